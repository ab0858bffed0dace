"""Loads an exported SavedModel in a fresh process and classifies encoded image files.

usage: python serve_in_fresh_process.py EXPORT_DIR OUT.npz FILE...
"""
import sys

import numpy as np
import tensorflow as tf


def main(export_dir, out_path, *files):
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    encoded = tf.constant([open(f, "rb").read() for f in files])
    outputs = serve(images=encoded)
    np.savez(out_path, probabilities=outputs["probabilities"].numpy(),
             classes=outputs["classes"].numpy().astype(str))


if __name__ == "__main__":
    main(*sys.argv[1:])
