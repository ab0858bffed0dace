"""The export stage: a SavedModel for TF Serving, written atomically.

`serving_default` takes `images`, a 1-D tf.string tensor of encoded images of any size,
and decodes, resizes and scales them in the graph with the same function the training
pipeline used, then returns `probabilities` [N, C] and `classes` [N] (class names).
"""
from __future__ import annotations

import os
import shutil
import uuid

import keras
import tensorflow as tf
from absl import logging

from tftransfer.data import preprocess_encoded


class ServingModule(tf.Module):
    def __init__(self, classifier: keras.Model, class_names: list[str], image_size: int,
                 hub_module):
        super().__init__(name="tftransfer_serving")
        self.classifier = classifier
        self.hub_module = hub_module  # tracked so the backbone's resources are exported
        self.class_names = tf.Variable(class_names, trainable=False, name="class_names")
        self.image_size = image_size

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes(self, images):
        batch = tf.map_fn(lambda encoded: preprocess_encoded(encoded, self.image_size), images,
                          fn_output_signature=tf.TensorSpec(
                              [self.image_size, self.image_size, 3], tf.float32))
        probabilities = self.classifier(batch, training=False)
        return {"probabilities": probabilities,
                "classes": tf.gather(self.class_names, tf.argmax(probabilities, axis=-1))}


def _replace_atomically(staging_dir: str, export_dir: str) -> None:
    retired = f"{export_dir}.old-{uuid.uuid4().hex[:8]}"
    if os.path.exists(export_dir):
        os.replace(export_dir, retired)
    os.replace(staging_dir, export_dir)
    shutil.rmtree(retired, ignore_errors=True)


def export_saved_model(classifier: keras.Model, class_names: list[str], image_size: int,
                       hub_module, export_dir: str) -> str:
    """Writes the SavedModel to a hidden staging folder, then renames it into place."""
    parent = os.path.dirname(os.path.abspath(export_dir))
    staging_dir = os.path.join(parent, f".{os.path.basename(export_dir)}.tmp-{uuid.uuid4().hex[:8]}")
    module = ServingModule(classifier, class_names, image_size, hub_module)
    try:
        tf.saved_model.save(module, staging_dir,
                            signatures={"serving_default": module.serve_bytes})
        _replace_atomically(staging_dir, export_dir)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    logging.info("Exported SavedModel to %s", export_dir)
    return export_dir
