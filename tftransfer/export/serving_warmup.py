"""TF Serving warm-up records: real validation images, replayed by the model server on load.

TF Serving runs the requests in `assets.extra/tf_serving_warmup_requests` (a TFRecord of
PredictionLog protos) before it marks a version available, so the first real request does
not pay for graph initialisation.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from tftransfer.config.run_config import MAX_WARMUP_REQUESTS
from tftransfer.export.layout import WARMUP_FILE
from tftransfer.export.signatures import BYTES

if TYPE_CHECKING:  # only the type: exporting needs none of the input stage
    from tftransfer.data.pipeline import DataBundle


def validation_images(data: DataBundle, count: int) -> list[bytes]:
    """Up to `count` PNG-encoded images of the validation split (else the test split).

    The splits hold uint8 pixels scaled to [0, 1], so rounding x * 255 restores them exactly."""
    split = data.validation if data.validation is not None else data.test
    if count <= 0 or split is None:
        return []
    images = split.unbatch().map(lambda image, _: image).take(count)
    return [tf.io.encode_png(tf.cast(tf.round(image * 255.0), tf.uint8)).numpy()
            for image in images]


def _prediction_log(encoded: bytes) -> prediction_log_pb2.PredictionLog:
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = BYTES.name
    request.inputs[BYTES.input_name].CopyFrom(tf.make_tensor_proto([encoded], dtype=tf.string))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup_requests(saved_model_dir: str, images: Sequence[bytes]) -> str:
    """Writes one single-image request of the bytes signature per encoded image; returns the
    file."""
    if len(images) > MAX_WARMUP_REQUESTS:
        raise ValueError(f"TF Serving refuses more than {MAX_WARMUP_REQUESTS} warm-up "
                         f"requests, got {len(images)}")
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for encoded in images:
            writer.write(_prediction_log(encoded).SerializeToString())
    logging.info("Wrote %d TF Serving warm-up requests to %s", len(images), path)
    return path
