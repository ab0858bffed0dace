"""The evaluation stage: metrics of a trained classifier, in-process or exported.

`python -m tftransfer.evaluate --model_dir=DIR --dataset=D [--split=test] [--output=F]`
evaluates an exported SavedModel on any TFDS split or image folder through its own
`serving_default` bytes signature (TFDS images are PNG-encoded, losslessly) and writes the
same metric fields as a run's metrics.json. Dataset labels match model classes by name.
"""
from __future__ import annotations

import json
import sys

import keras
import numpy as np
from absl import app, flags

from tftransfer import classification_metrics
from tftransfer.data import DataBundle
from tftransfer.errors import UserError
from tftransfer.export_layout import LABELS_FILE, read_class_names, resolve_saved_model


def predict_split(classifier: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], probabilities [N, C]) of one inference pass over a batched split."""
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    return labels, classifier.predict(dataset, verbose=0)


def evaluate_splits(classifier: keras.Model, data: DataBundle):
    """({split: metrics}, {split: (labels, probabilities)}) for the validation and test
    splits that exist; the metrics are computed exactly as for an exported model."""
    metrics, predictions = {}, {}
    for split, dataset in (("validation", data.validation), ("test", data.test)):
        if dataset is not None:
            predictions[split] = predict_split(classifier, dataset)
            metrics[split] = classification_metrics.compute(*predictions[split],
                                                            data.class_names)
    return metrics, predictions


_DEFINED = []


def define_flags() -> None:
    if _DEFINED:
        return
    flags.DEFINE_string("model_dir", None, "Exported SavedModel: <output_dir>/saved_model "
                                           "(its highest version) or a version folder.")
    flags.DEFINE_string("dataset", None, "TFDS name or image folder.")
    flags.DEFINE_string("data_dir", "", "TFDS data directory.")
    flags.DEFINE_string("split", "test", "TFDS split, or the folder split (train/validation/"
                                         "test) of a pre-split folder; 'all' for a flat one.")
    flags.DEFINE_integer("batch_size", 64, "Images per call of the signature.", lower_bound=1)
    flags.DEFINE_string("output", "", "Where to write the metrics JSON (default: stdout).")
    _DEFINED.append(True)


def _encoded_examples(dataset: str, data_dir: str, split: str):
    """(tf.data of (encoded bytes, label), dataset class names)."""
    import tensorflow as tf
    from tftransfer import config, folder_source, tfds_source

    if config.is_tfds_name(dataset):
        cfg = config.DataConfig(dataset=dataset, data_dir=data_dir, train_split=split,
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
    import tensorflow as tf

    if not model_dir:
        raise UserError("--model_dir is required")
    model_dir = resolve_saved_model(model_dir, flag="--model_dir")
    model_names = read_class_names(model_dir)
    if model_names is None:
        raise UserError(f"--model_dir: {model_dir} has no assets/{LABELS_FILE} of class names")
    loaded = tf.saved_model.load(model_dir)
    examples, data_names = _encoded_examples(dataset, data_dir, split)
    unknown = sorted(set(data_names) - set(model_names))
    if unknown:
        raise UserError(f"--dataset: classes the model does not know: {unknown}")
    to_model = np.array([model_names.index(name) for name in data_names])
    serve = loaded.signatures["serving_default"]
    probabilities, labels = [], []
    for encoded, label in examples.batch(batch_size):
        probabilities.append(serve(images=encoded)["probabilities"].numpy())
        labels.append(to_model[label.numpy()])
    probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
    return {split: classification_metrics.compute(labels, probabilities, model_names)}


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        if not f.dataset:
            raise UserError("--dataset is required")
        metrics = evaluate_export(f.model_dir, f.dataset, f.data_dir, f.split, f.batch_size)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    text = json.dumps(metrics, indent=2, sort_keys=True)
    if f.output:
        with open(f.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        print(text)


def entry_point() -> None:
    from tftransfer.flags import parse_argv
    define_flags()
    app.run(main, flags_parser=parse_argv)


if __name__ == "__main__":
    entry_point()
