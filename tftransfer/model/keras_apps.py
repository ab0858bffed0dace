"""Keras 3 models as backbones: keras.applications (--backbone=keras:NAME[@WEIGHTS_FILE])
and KerasHub image backbones (--backbone=keras_hub:PRESET).

`KerasAppModule` and `KerasHubModule` give such a model, pooled to a feature vector, the
shape of a TF-Hub feature-vector module: `variables` and `trainable_variables` as
tf.Variables, and `__call__(images in [0, 1], training)`. HubBackbone then adopts it like
any hub module: the same blocks, fine-tune depths, checkpoints and export.
"""
from __future__ import annotations

import importlib

import keras
import numpy as np
import tensorflow as tf
from absl import logging

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


class _KerasModelModule(tf.Module):
    """A Keras model from images in [0, 1] to features, as a hub module."""

    def __init__(self, name: str, model: keras.Model):
        super().__init__(name=name)
        self.model = model
        self.variable_paths = [v.path for v in model.weights]  # e.g. block6a_.../kernel

    @property
    def variables(self):
        return [v.value for v in self.model.weights]

    @property
    def trainable_variables(self):
        return [v.value for v in self.model.trainable_weights]

    def __call__(self, images, training=False):
        return self.model(images, training=training)


class KerasAppModule(_KerasModelModule):
    def __init__(self, name: str, weights: str = "imagenet"):
        """`weights`: "imagenet" (Keras downloads them once into ~/.keras/models), a
        weights file saved from the same application, or "" for random weights."""
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
        module_name = f"keras_{name.lower()}"
        super().__init__(module_name, keras.Model(images, base(preprocess(images * 255.0)),
                                                  name=module_name))


def _import_keras_hub():
    try:
        import keras_hub
    except ImportError:
        raise BackboneError("--backbone: keras_hub:PRESET needs KerasHub; "
                            "pip install keras-hub") from None
    return keras_hub


def _pixel_scaling(keras_hub, preset: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) the preset's image converter applies to pixels in [0, 255]; a
    preset without one gets pixels in [0, 1]."""
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception as e:  # no image_converter.json, or a preset of another kind
        logging.warning("KerasHub preset %s has no image converter (%s): feeding pixels in "
                        "[0, 1]", preset, first_line(e))
        return np.float32(1 / 255), np.float32(0)
    scale = 1.0 if converter.scale is None else converter.scale
    offset = 0.0 if converter.offset is None else converter.offset
    return np.asarray(scale, np.float32), np.asarray(offset, np.float32)


def _pooled(features):
    """[batch, features] from a feature map (averaged over space) or tokens (over tokens)."""
    if len(features.shape) == 4:
        return keras.layers.GlobalAveragePooling2D(name="feature_pool")(features)
    if len(features.shape) == 3:
        return keras.layers.GlobalAveragePooling1D(name="feature_pool")(features)
    return features


class KerasHubModule(_KerasModelModule):
    def __init__(self, preset: str):
        """`preset`: a KerasHub preset name (downloaded from Kaggle once, into KerasHub's
        cache) or a local preset folder (config.json, model.weights.h5)."""
        keras_hub = _import_keras_hub()
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            base = keras_hub.models.Backbone.from_preset(preset)
            scale, offset = _pixel_scaling(keras_hub, preset)
        except Exception as e:  # downloads, formats and non-image presets fail many ways
            raise BackboneError(f"--backbone: cannot load KerasHub preset '{preset}': "
                                f"{first_line(e)}") from None
        finally:
            keras.config.set_dtype_policy(policy)
        shape = tuple(base.input.shape[1:]) if hasattr(base, "input") else (None, None, 3)
        images = keras.Input(shape if len(shape) == 3 else (None, None, 3))
        features = _pooled(base(images * 255.0 * scale + offset))
        name = "keras_hub_" + "".join(c if c.isalnum() else "_"
                                      for c in preset.rstrip("/").rsplit("/", 1)[-1])
        super().__init__(name, keras.Model(images, features, name=name))
