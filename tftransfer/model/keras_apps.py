"""Keras 3 applications as backbones (--backbone=keras:NAME[@WEIGHTS_FILE]).

`KerasAppModule` gives a keras.applications model (include_top=False, pooling="avg") the
shape of a TF-Hub feature-vector module: `variables` and `trainable_variables` as
tf.Variables, and `__call__(images in [0, 1], training)`. HubBackbone then adopts it like
any hub module: the same blocks, fine-tune depths, checkpoints and export.
"""
from __future__ import annotations

import importlib

import keras
import tensorflow as tf

from tftransfer.config.errors import BackboneError, first_line


def _constructor(name: str):
    constructor = getattr(keras.applications, name, None)
    if not name[:1].isupper() or not callable(constructor):
        known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise BackboneError(f"--backbone: keras.applications has no '{name}'; choose from "
                            f"{', '.join(known)}")
    return constructor


def _float32_model(constructor, weights: str):
    """The application without its classifier, in float32 whatever the global policy (a
    hub module's graph is float32 too; mixed precision applies to the head)."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return constructor(include_top=False, pooling="avg", input_shape=(None, None, 3),
                           weights=weights or None)
    finally:
        keras.config.set_dtype_policy(policy)


class KerasAppModule(tf.Module):
    def __init__(self, name: str, weights: str = "imagenet"):
        """`weights`: "imagenet" (Keras downloads them once into ~/.keras/models), a
        weights file saved from the same application, or "" for random weights."""
        super().__init__(name=f"keras_{name.lower()}")
        constructor = _constructor(name)
        from_file = weights not in ("", "imagenet")
        try:
            base = _float32_model(constructor, "" if from_file else weights)
            if from_file:
                base.load_weights(weights)
        except Exception as e:  # downloads, file formats and shapes fail in many ways
            raise BackboneError(f"--backbone: cannot build keras:{name} with weights "
                                f"'{weights}': {first_line(e)}") from None
        # Each application scales its own input; the pipeline's pixels are in [0, 1].
        preprocess = importlib.import_module(constructor.__module__).preprocess_input
        images = keras.Input((None, None, 3))
        self.model = keras.Model(images, base(preprocess(images * 255.0)), name=self.name)
        self.variable_paths = [v.path for v in self.model.weights]  # e.g. block6a_.../kernel

    @property
    def variables(self):
        return [v.value for v in self.model.weights]

    @property
    def trainable_variables(self):
        return [v.value for v in self.model.trainable_weights]

    def __call__(self, images, training=False):
        return self.model(images, training=training)
