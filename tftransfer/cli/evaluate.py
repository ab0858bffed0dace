"""`python -m tftransfer.evaluate --model_dir=DIR --dataset=D [--split=test] [--output=F]`

Evaluates an exported SavedModel on any TFDS split or image folder through its own bytes
signature (TFDS images are PNG-encoded, losslessly) and writes the same metric fields as a
run's metrics.json. Dataset labels match model classes by name.
"""
from __future__ import annotations

import json

import numpy as np
from absl import app, flags

from tftransfer.cli import common
from tftransfer.config.errors import UserError
from tftransfer.export.layout import LABELS_FILE
from tftransfer.outputs import files as atomic

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("model_dir", None, "Exported SavedModel: <output_dir>/saved_model "
                                           "(its highest version) or a version folder.")
    flags.DEFINE_string("dataset", None, "TFDS name or image folder.")
    flags.DEFINE_string("data_dir", "", "TFDS data directory.")
    flags.DEFINE_string("split", "test", "TFDS split, or the folder split (train/validation/"
                                         "test) of a pre-split folder; 'all' for a flat one.")
    flags.DEFINE_integer("batch_size", 64, "Images per call of the signature.", lower_bound=1)
    flags.DEFINE_string("output", "", "Where to write the metrics JSON (default: stdout).")


def _encoded_examples(dataset: str, data_dir: str, split: str):
    """(tf.data of (encoded bytes, label), dataset class names)."""
    import tensorflow as tf

    from tftransfer.config.run_config import DataConfig, is_tfds_name
    from tftransfer.data import folder_source, tfds_source

    if is_tfds_name(dataset):
        cfg = DataConfig(dataset=dataset, data_dir=data_dir, train_split=split,
                         validation_fraction=0.0, test_split="")
        names, splits, _ = tfds_source.load_tfds(cfg)
        images, _ = splits["train"]
        return images.map(lambda image, label: (tf.io.encode_png(image), label)), names
    folders = folder_source.load_folder(dataset, 0.0, 0.0, seed=0)
    items = folders.files["train" if split == "all" else split]
    if not items:
        raise UserError(f"--split: no images in split '{split}' of {dataset}")
    paths, labels = zip(*items)
    files = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    return files.map(lambda path, label: (tf.io.read_file(path), label)), folders.class_names


def evaluate_export(model_dir: str, dataset: str, data_dir: str, split: str,
                    batch_size: int) -> dict:
    from tftransfer.evaluate import metrics as classification_metrics, splits
    from tftransfer.export import client as client_lib, signatures

    if not model_dir:
        raise UserError("--model_dir is required")
    client = client_lib.ServingClient(model_dir, flag="--model_dir")
    if client.is_multi_label():
        raise UserError(f"--model_dir: {client.model_dir} is a multi-label (--labels_csv) "
                        "export; its metrics are in its run's metrics.json")
    model_names = client.class_names
    if model_names is None:
        raise UserError(f"--model_dir: {client.model_dir} has no assets/{LABELS_FILE} of "
                        "class names")
    examples, data_names = _encoded_examples(dataset, data_dir, split)
    unknown = sorted(set(data_names) - set(model_names))
    if unknown:
        raise UserError(f"--dataset: classes the model does not know: {unknown}")
    to_model = np.array([model_names.index(name) for name in data_names])
    labels, probabilities = splits.predict_batches(
        lambda encoded: client.probabilities(signatures.BYTES, encoded),
        examples.batch(batch_size))
    return {split: classification_metrics.compute(to_model[labels], probabilities,
                                                  model_names)}


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    with common.user_errors():
        if not FLAGS.dataset:
            raise UserError("--dataset is required")
        common.start_tensorflow()
        metrics = evaluate_export(FLAGS.model_dir, FLAGS.dataset, FLAGS.data_dir, FLAGS.split,
                                  FLAGS.batch_size)
    text = json.dumps(metrics, indent=2, sort_keys=True)
    if FLAGS.output:
        atomic.write_text(FLAGS.output, text)
    else:
        print(text)


def entry_point() -> None:
    common.start(main, define_flags)
