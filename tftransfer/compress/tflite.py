"""TFLite models of the trained classifier, one per quantization mode: conversion, and the
interpreter that runs them.

Every mode's model takes float32 pixels in [0, 1], [N, S, S, 3], and returns probabilities
[N, C], like the in-memory classifier, so each is a drop-in replacement:
- `float`: float32 weights and activations;
- `dynamic`: dynamic-range quantization (int8 weights, float activations);
- `float16`: float16 weights;
- `int8`: full-integer quantization, calibrated on training images. Every op runs in
  int8; only the input and output stay float32 (one quantize and one dequantize op), so
  callers feed the same pixels as to the other models.
"""
from __future__ import annotations

import contextlib
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.outputs import files as atomic

MODES = ("float", "dynamic", "float16", "int8")


def representative_images(train_unbatched: tf.data.Dataset, size: int, count: int,
                          seed: int) -> np.ndarray:
    """`count` seeded-random images of the `size` training images (before augmentation),
    as float32 in [0, 1]. Drawn from the whole split, which may be ordered by class, without
    a shuffle buffer (which would hold large images in memory)."""
    keep = np.zeros(size, dtype=bool)
    keep[np.random.default_rng(seed).choice(size, min(count, size), replace=False)] = True
    mask = tf.constant(keep)
    chosen = train_unbatched.enumerate().filter(lambda i, _: mask[i])
    return np.stack([image.astype(np.float32) / 255.0
                     for _, (image, _) in chosen.as_numpy_iterator()])


def convert(classifier: keras.Model, mode: str,
            calibration: np.ndarray | None = None) -> bytes:
    """The flatbuffer of one mode; `calibration` images are required for int8."""
    # from_keras_model freezes every variable, including the hub module's.
    converter = tf.lite.TFLiteConverter.from_keras_model(classifier)
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with _keras_messages_logged():
        return converter.convert()


@contextlib.contextmanager
def _keras_messages_logged():
    """The converter writes a temporary SavedModel through Keras, which prints every
    endpoint and captured variable to stdout; with interactive logging off, Keras sends
    that listing to the log instead."""
    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if interactive:
            keras.config.enable_interactive_logging()


def write_model(classifier: keras.Model, mode: str, folder: str,
                  calibration: np.ndarray | None = None) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{mode}.tflite")
    flatbuffer = convert(classifier, mode, calibration)
    atomic.write_bytes(path, flatbuffer)
    logging.info("TFLite %s: %s (%d bytes)", mode, path, len(flatbuffer))
    return path


class InterpreterPredictor:
    """Runs a .tflite file on float pixels of any batch size (the input is resized to
    the batch when it changes, so a split is evaluated a batch per invocation)."""

    def __init__(self, path: str, num_threads: int | None = None):
        self.interpreter = tf.lite.Interpreter(model_path=path,
                                               num_threads=num_threads or os.cpu_count())
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input, images.shape)
            self.interpreter.allocate_tensors()
            self._batch = images.shape[0]
        self.interpreter.set_tensor(self._input, images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)

    def tensor_types(self) -> dict[str, int]:
        """{dtype name: number of tensors} over the model's tensors."""
        names = [detail["dtype"].__name__ for detail in self.interpreter.get_tensor_details()]
        return {name: names.count(name) for name in sorted(set(names))}
