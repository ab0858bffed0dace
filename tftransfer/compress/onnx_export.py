"""The ONNX model of the trained classifier: conversion with tf2onnx, and the onnxruntime
session that runs it.

Like the TFLite models (tflite.py), it takes float32 pixels in [0, 1], [N, S, S, 3], and
returns probabilities [N, C], so it is a drop-in replacement for the in-memory classifier.

tf2onnx and onnxruntime are imported here only, lazily by compression.py when --export_onnx
asks for them; validation checks they are installed before training starts.
"""
from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.outputs import files as atomic

ONNX_FILE = "classifier.onnx"
OPSET = 17            # pinned, so a tf2onnx upgrade does not silently change the graph
INPUT_NAME = "pixels"


def convert(classifier: keras.Model, image_size: int) -> bytes:
    """The serialized ONNX ModelProto of the classifier's inference call."""
    import tf2onnx

    # The model's own call, traced as a tf.function on the TFLite variants' input. Not the
    # exported SavedModel's signatures: they take uint8 pixels of any size and resize one
    # image at a time in a tf.map_fn loop, another input and a loop ONNX runs poorly. Not
    # tf2onnx.convert.from_keras either: with Keras 3 (TF >= 2.16) it falls back to this
    # same trace after probing tf.keras 2 internals, and renames the model's outputs.
    # Tracing captures every variable, the hub backbone's too, and from_function freezes
    # them into the graph's initializers. tf2onnx keeps an op it cannot convert as is, so
    # an unsupported op surfaces when onnxruntime loads the file (RuntimePredictor).
    spec = [tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=INPUT_NAME)]
    call = tf.function(lambda pixels: classifier(pixels, training=False), input_signature=spec)
    model_proto, _ = tf2onnx.convert.from_function(call, input_signature=spec, opset=OPSET)
    return model_proto.SerializeToString()


def write_model(classifier: keras.Model, image_size: int, folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ONNX_FILE)
    serialized = convert(classifier, image_size)
    atomic.write_bytes(path, serialized)
    logging.info("ONNX: %s (%d bytes, opset %d)", path, len(serialized), OPSET)
    return path


def runtime_name() -> str:
    import onnxruntime

    return f"ONNX Runtime {onnxruntime.__version__}"


class RuntimePredictor:
    """Runs a .onnx file on float pixels of any batch size on onnxruntime's CPU provider,
    with as many threads as the TFLite interpreter gets."""

    def __init__(self, path: str, num_threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or os.cpu_count() or 1
        self.session = onnxruntime.InferenceSession(path, options,
                                                    providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run(None, {self._input: pixels})[0]
