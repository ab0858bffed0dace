"""A Keras 3 layer around a TF2 reusable SavedModel (TF-Hub format) that Keras can train.

`hub.KerasLayer` is a Keras 2 layer and `keras.layers.TFSMLayer` cannot train, so this
layer loads the module with `tensorflow_hub.load` and adopts each of its `tf.Variable`s as
a Keras variable (no copy: the Keras variable wraps the same resource). Keras then trains,
freezes, checkpoints and mirrors them; calls go to the module's own restored function.
"""
from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from absl import logging

from tftransfer.config import catalogue
from tftransfer.config.errors import BackboneError, first_line
from tftransfer.config.run_config import DEFAULT_BLOCK_PATTERN
from tftransfer.model import blocks as blocks_lib, keras_apps


def load_module(handle: str):
    """hub.load with one-line errors (URL, Kaggle URL, TFHUB_CACHE_DIR or local folder), or
    a Keras application for keras:NAME[@WEIGHTS_FILE] or a KerasHub backbone for
    keras_hub:PRESET (keras_apps.py)."""
    app = catalogue.keras_app(handle)
    if app is not None:
        name, weights = app
        return keras_apps.KerasAppModule(name, weights or "imagenet")
    preset = catalogue.keras_hub_preset(handle)
    if preset is not None:
        return keras_apps.KerasHubModule(preset)
    try:
        module = hub.load(handle)
    except Exception as e:  # hub/TF raise many types for bad handles, downloads, formats
        raise BackboneError(f"--hub_handle: cannot load '{handle}': {first_line(e)}") from None
    if not callable(module) or not hasattr(module, "variables"):
        raise BackboneError(f"--hub_handle: '{handle}' is not a TF2 reusable SavedModel "
                            "(needs __call__ and variables)")
    return module


def _saved_input_shapes(module) -> str:
    """The image shapes the module's __call__ was saved for, e.g. '(None, 32, 32, 3)'."""
    shapes = []
    for function in getattr(module.__call__, "concrete_functions", ()):
        images = function.structured_input_signature[0][:1]
        if images and isinstance(images[0], tf.TensorSpec):
            shapes.append(str(tuple(images[0].shape)))
    return " or ".join(sorted(set(shapes)))


def fresh_value(name: str, shape: tuple[int, ...], rng) -> np.ndarray:
    """A variable's value at random initialisation, from its name and shape: normalisation
    as the identity (scale and variance 1, shift and mean 0), biases 0, and kernels He-normal
    over their fan-in (a depthwise kernel's is its window)."""
    leaf = name.removesuffix(":0").rsplit("/", 1)[-1].lower()
    if leaf in ("gamma", "moving_variance", "scale", "variance"):
        return np.ones(shape, np.float32)
    if len(shape) < 2 or leaf in ("beta", "moving_mean", "bias", "biases", "mean", "offset"):
        return np.zeros(shape, np.float32)
    fan_in = int(np.prod(shape[:-1]))
    if "depthwise" in name.lower() and len(shape) == 4:
        fan_in = shape[0] * shape[1]
    return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape).astype(np.float32)


def _keras_name(tf_name: str) -> str:
    return re.sub(r"[/:]", "_", tf_name.removesuffix(":0"))


class HubBackbone(keras.layers.Layer):
    """Feature extractor whose top `fine_tune_depth` blocks can be trained."""

    def __init__(self, handle: str, block_pattern: str = DEFAULT_BLOCK_PATTERN,
                 bn_inference: bool = True, name: str = "backbone", module=None, **kwargs):
        """`module`: an already loaded `handle` to adopt instead of loading it again."""
        # The module's graph is float32; mixed-precision policies apply to the head only.
        # (A config from get_config names a dtype too: from_config must not pass it twice.)
        super().__init__(name=name, **{**kwargs, "dtype": "float32"})
        self.handle, self.block_pattern, self.bn_inference = handle, block_pattern, bn_inference
        self.module = module if module is not None else load_module(handle)
        module_trainable = {id(v) for v in self.module.trainable_variables}
        # A Keras application's tf.Variables are named by their layer's path, not their own.
        self.variable_names = getattr(self.module, "variable_paths", None) or [
            v.name for v in self.module.variables]
        self._can_train = [id(v) in module_trainable for v in self.module.variables]
        self.adopted = [keras.Variable(v, name=_keras_name(v.name), trainable=False)
                        for v in self.module.variables]
        self.blocks = blocks_lib.group_blocks(self.variable_names, block_pattern)
        self.fine_tune_depth = 0
        logging.info("Backbone %s: %d variables in %d groups (bottom to top):\n%s", handle,
                     len(self.adopted), len(self.blocks),
                     blocks_lib.describe(self.blocks, self.variable_names))

    @property
    def num_blocks(self) -> int:
        return sum(1 for b in self.blocks if b.name != blocks_lib.STEM)

    def set_fine_tune_depth(self, depth: int) -> None:
        try:
            chosen = blocks_lib.trainable_indices(self.blocks, depth)
        except ValueError as e:
            raise BackboneError(f"--fine_tune_depth: {e}") from None
        for i, variable in enumerate(self.adopted):
            variable.trainable = i in chosen and self._can_train[i]
        self.fine_tune_depth = depth

    def reinitialize(self, seed: int) -> None:
        """Random weights in place of the pretrained ones (--compare_scratch)."""
        rng = np.random.default_rng(seed)
        for name, variable in zip(self.variable_names, self.adopted):
            variable.assign(fresh_value(name, tuple(variable.shape), rng))

    def rate_factors(self, decay: float) -> dict[int, float]:
        """{id of a Keras variable: its learning-rate factor} for --layer_lr_decay: the top
        block 1, each block below `decay` times the one above."""
        return {id(self.adopted[i]): factor
                for i, factor in blocks_lib.rate_factors(self.blocks, decay).items()}

    def probe(self, image_size: int) -> int:
        """Checks the module on one image of `image_size`; returns the feature width."""
        strategy = tf.distribute.get_strategy()
        images = tf.zeros([1, image_size, image_size, 3])
        try:
            # In replica context: restored functions with mirrored variables refuse the
            # cross-replica context that a strategy scope is in.
            per_replica = strategy.run(lambda: self.module(images, training=False))
            features = strategy.experimental_local_results(per_replica)[0]
        except Exception as e:  # wrong input size or signature, reported in one line
            accepted = _saved_input_shapes(self.module)
            reason = f"it takes images of shape {accepted}" if accepted else first_line(e)
            raise BackboneError(f"--image_size: the module rejects {image_size}x{image_size} "
                                f"RGB input; {reason}") from None
        if not isinstance(features, tf.Tensor) or features.shape.rank != 2:
            shape = getattr(features, "shape", type(features).__name__)
            raise BackboneError(f"--hub_handle: '{self.handle}' returns {shape}, not a "
                                "feature vector [batch, features]; use a feature-vector model")
        return int(features.shape[-1])

    def call(self, images, training=None):
        update_statistics = bool(training) and self.fine_tune_depth != 0 and not self.bn_inference
        return self.module(images, training=update_statistics)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle,
                "block_pattern": self.block_pattern, "bn_inference": self.bn_inference}
