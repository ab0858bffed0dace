"""Test-time augmentation (--tta, --export_tta): a model's probabilities averaged over
each image and its horizontal mirror.

`with_tta` wraps any Keras model taking [B, H, W, 3] images (a classifier, an ensemble) in
a functional model that calls it twice and averages; the wrapped model holds the same
variables, so evaluation, the SavedModel's signatures and the TFLite and ONNX conversions
built from the wrapper all average alike.
"""
from __future__ import annotations

import keras
from keras import ops

TTA_NONE, TTA_FLIP = "none", "flip"


@keras.saving.register_keras_serializable(package="tftransfer")
class HorizontalFlip(keras.layers.Layer):
    """Mirrors [B, H, W, C] images left to right, always (RandomFlip flips at random)."""

    def call(self, images):
        return ops.flip(images, axis=2)


def flip_averaged(model: keras.Model) -> keras.Model:
    """mean(model(x), model(mirrored x)), in float32 whatever the precision policy, as
    the model's softmax is."""
    with model.distribute_strategy.scope():
        images = keras.Input(model.input_shape[1:], name="images")
        mirrored = HorizontalFlip(dtype="float32", name="mirror")(images)
        averaged = keras.layers.Average(dtype="float32", name="tta_average")(
            [model(images), model(mirrored)])
        return keras.Model(images, averaged, name=f"{model.name}_flip_tta")


def with_tta(model: keras.Model, mode: str) -> keras.Model:
    """`model` itself for mode "none", else its test-time-augmented wrapper."""
    if mode == TTA_NONE:
        return model
    if mode == TTA_FLIP:
        return flip_averaged(model)
    raise ValueError(f"unknown test-time augmentation {mode!r}")


def for_export(model: keras.Model, export_tta: bool) -> keras.Model:
    """What an export (SavedModel, TFLite, ONNX) is built from: with --export_tta, the flip
    average."""
    return with_tta(model, TTA_FLIP if export_tta else TTA_NONE)
