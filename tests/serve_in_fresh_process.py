"""Loads an exported SavedModel in a fresh process and runs its signatures.

usage: python serve_in_fresh_process.py EXPORT_DIR OUT.npz [--pixels=BATCH.npy] FILE...

`serving_default` classifies the encoded FILEs; with --pixels, `serving_pixels` also
classifies the uint8 [N, H, W, 3] batch saved in BATCH.npy.
"""
import sys

import numpy as np
import tensorflow as tf


def main(export_dir, out_path, *args):
    pixels_path = next((a.split("=", 1)[1] for a in args if a.startswith("--pixels=")), None)
    files = [a for a in args if not a.startswith("--pixels=")]
    loaded = tf.saved_model.load(export_dir)
    outputs = loaded.signatures["serving_default"](
        images=tf.constant([open(f, "rb").read() for f in files]))
    results = {"probabilities": outputs["probabilities"].numpy(),
               "classes": outputs["classes"].numpy().astype(str)}
    if pixels_path:
        outputs = loaded.signatures["serving_pixels"](pixels=tf.constant(np.load(pixels_path)))
        results.update(pixel_probabilities=outputs["probabilities"].numpy(),
                       pixel_classes=outputs["classes"].numpy().astype(str))
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
