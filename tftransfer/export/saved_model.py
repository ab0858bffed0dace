"""The export stage: a versioned SavedModel for TF Serving, written atomically.

Layout (see export_layout.py): `<base>/<version>/` holds saved_model.pb, variables/,
assets/labels.txt and, with warm-up images, assets.extra/tf_serving_warmup_requests.
The signatures are export/signatures.py's table (encoded bytes, uint8 pixels), each
returning `probabilities` [N, C] float32 and `classes` [N] string (the labels.txt line of
the most probable class); a multi-label export (thresholds given) returns
signatures.MULTI_LABEL_OUTPUTS instead. Each resizes and scales in the graph with the training
pipeline's own functions.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import uuid
from typing import Sequence

import keras
import tensorflow as tf
from absl import logging

from tftransfer.config.errors import DataError
from tftransfer.data.preprocess import preprocess_encoded, preprocess_pixels
from tftransfer.export import serving_warmup as warmup, signatures as signatures_lib
from tftransfer.export.layout import LABELS_FILE, next_version


def _labels_table(labels: tf.saved_model.Asset) -> tf.lookup.StaticHashTable:
    """Line number -> line of the labels asset; re-initialised from the copy in assets/."""
    return tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(labels, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                                      tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
        default_value="")


# Each signature's per-example preprocessing: the training pipeline's own functions.
_PREPROCESSING = {signatures_lib.BYTES.name: preprocess_encoded,
                  signatures_lib.PIXELS.name: preprocess_pixels}


def _multi_label_outputs(probabilities, thresholds, names) -> dict[str, tf.Tensor]:
    """The labels at or above their threshold, most probable first, padded with ""."""
    above = probabilities >= thresholds
    order = tf.argsort(tf.where(above, probabilities, -1.0), axis=-1, direction="DESCENDING")
    kept = tf.gather(above, order, batch_dims=1)
    labels = tf.where(kept, tf.gather(names, order), "")
    return {signatures_lib.PROBABILITIES: probabilities, signatures_lib.LABELS: labels,
            signatures_lib.ABOVE_THRESHOLD: above}


class ServingModule(tf.Module):
    def __init__(self, classifier: keras.Model, labels_path: str, image_size: int, hub_module,
                 thresholds: Sequence[float] | None = None):
        super().__init__(name="tftransfer_serving")
        # The model is called through an untracked partial, and only the variables the hub
        # module does not already hold are tracked: tracking the Keras model would export
        # its optimizer's slots and a second copy of every adopted backbone weight.
        self._predict = functools.partial(classifier.__call__, training=False)
        in_module = {id(v) for v in hub_module.variables}
        self.model_variables = [v for v in classifier.variables
                                if id(getattr(v, "value", v)) not in in_module]
        self.hub_module = hub_module  # tracked so the backbone's resources are exported
        self.labels = tf.saved_model.Asset(labels_path)
        self.labels_table = _labels_table(self.labels)
        self.image_size = image_size
        # Multi-label: each label's threshold, saved with the export.
        self.thresholds = None if thresholds is None else tf.Variable(
            tf.constant(thresholds, tf.float32), trainable=False, name="thresholds")

    def _outputs(self, batch: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self._predict(batch)
        if self.thresholds is not None:
            names = self.labels_table.lookup(tf.range(tf.size(self.thresholds, tf.int64)))
            return _multi_label_outputs(probabilities, self.thresholds, names)
        return {signatures_lib.PROBABILITIES: probabilities,
                signatures_lib.CLASSES: self.labels_table.lookup(
                    tf.argmax(probabilities, axis=-1))}

    def _serving_function(self, signature: signatures_lib.Signature):
        """The signature's input, one example at a time through its preprocessing, then
        the model on the batch."""
        size, preprocess = self.image_size, _PREPROCESSING[signature.name]

        def serve(inputs):
            return self._outputs(tf.map_fn(
                lambda one: preprocess(one, size), inputs,
                fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32)))
        # The TensorSpec's name becomes the signature's input name.
        spec = tf.TensorSpec(signature.shape, tf.as_dtype(signature.dtype),
                             name=signature.input_name)
        return tf.function(serve, input_signature=[spec])

    def signatures(self) -> dict:
        return {s.name: self._serving_function(s) for s in signatures_lib.SIGNATURES}


def _write_labels(class_names: Sequence[str], folder: str) -> str:
    broken = [name for name in class_names if "\n" in name or "\r" in name]
    if broken:
        raise DataError(f"class names cannot hold line breaks ({LABELS_FILE} has one per "
                        f"line): {broken}")
    path = os.path.join(folder, LABELS_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in class_names))
    return path


def _replace_atomically(staging_dir: str, version_dir: str) -> None:
    """Renames staging_dir to version_dir; an existing version_dir is renamed away first
    (to a hidden name, which TF Serving ignores) and deleted after."""
    base, version = os.path.split(version_dir)
    retired = os.path.join(base, f".retired-{version}-{uuid.uuid4().hex[:8]}")
    if os.path.exists(version_dir):
        os.replace(version_dir, retired)
    os.replace(staging_dir, version_dir)
    shutil.rmtree(retired, ignore_errors=True)


def _recover_from_killed_export(base_dir: str) -> None:
    """Clears the hidden folders an export killed with SIGKILL (no `finally` runs) left,
    putting back a version it had retired but not yet replaced."""
    for name in sorted(os.listdir(base_dir)):
        path = os.path.join(base_dir, name)
        retired = re.fullmatch(r"\.retired-(\d+)-\w+", name)
        if retired and not os.path.exists(os.path.join(base_dir, retired.group(1))):
            os.replace(path, os.path.join(base_dir, retired.group(1)))
        elif name.startswith((".staging-", ".retired-")):
            shutil.rmtree(path, ignore_errors=True)


def export_saved_model(classifier: keras.Model, class_names: Sequence[str], image_size: int,
                       hub_module, base_dir: str, version: int = 0,
                       warmup_images: Sequence[bytes] = (),
                       thresholds: Sequence[float] | None = None) -> str:
    """Exports `<base_dir>/<version>/` (version 0: one above the highest present), with a
    warm-up request per encoded image, through a hidden staging folder; returns the folder.
    `thresholds`: a multi-label export's, one per class name."""
    os.makedirs(base_dir, exist_ok=True)
    _recover_from_killed_export(base_dir)
    version = version or next_version(base_dir)
    version_dir = os.path.join(base_dir, str(version))
    staging_dir = os.path.join(base_dir, f".staging-{version}-{uuid.uuid4().hex[:8]}")
    try:
        with tempfile.TemporaryDirectory() as labels_folder:
            module = ServingModule(classifier, _write_labels(class_names, labels_folder),
                                   image_size, hub_module, thresholds)
            tf.saved_model.save(module, staging_dir, signatures=module.signatures())
        if warmup_images:
            warmup.write_warmup_requests(staging_dir, warmup_images)
        _replace_atomically(staging_dir, version_dir)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    logging.info("Exported SavedModel version %d to %s", version, version_dir)
    return version_dir
