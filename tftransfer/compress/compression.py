"""Compressed models of the trained classifier, evaluated and timed beside the float export.

Rows (the "variants" list) of `<output_dir>/compression.json`, in order (compression_table.py
formats them for the report):
- `saved_model`: the float export, the baseline;
- `tflite_<mode>` for each --export_tflite quantization mode (tflite.py), in the TFLite
  interpreter, written to `<output_dir>/tflite/<mode>.tflite`;
- `onnx` with --export_onnx: the classifier converted by tf2onnx (onnx_export.py), run in
  onnxruntime, written to `<output_dir>/onnx/classifier.onnx`;
- `keras_int8`: Keras 3's `quantize("int8")` of a copy of the classifier. It applies to
  Dense and EinsumDense layers, i.e. the head; the hub backbone is a restored TF graph that
  Keras cannot quantize. Run in-process; its size is its saved weights (`.weights.h5`);
- `pruned`: the magnitude-pruned SavedModel (pruning.py).
SavedModel rows are run through the export's uint8-pixels signature. Each row has accuracy
and macro-F1 on the test split (validation when there is none), size on disk raw and
gzipped, latency p50/p95 at batch 1, throughput at the serving batch, the accuracy drop
from the baseline and `flagged` when that drop exceeds --compression_tolerance.
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.compress import onnx_export, pruning, tflite
from tftransfer.config.errors import DataError, first_line
from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.evaluate import metrics as classification_metrics, performance, splits
from tftransfer.export import client as client_lib, signatures
from tftransfer.export.layout import resolve_saved_model
from tftransfer.model.classifier import TransferClassifier
from tftransfer.model import tta
from tftransfer.outputs import files as atomic, run_folder

QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense)
BASELINE = "saved_model"
TIMING_REPEATS = 30


@dataclasses.dataclass
class Candidate:
    """A compressed model ready to measure: `predict` maps float pixels [N, S, S, 3] in [0, 1] to
    probabilities [N, C]."""
    name: str                 # its row's "variant" in compression.json
    runtime: str
    path: str
    predict: Callable[[np.ndarray], np.ndarray]
    details: dict = dataclasses.field(default_factory=dict)


def requested(cfg: RunConfig) -> bool:
    e = cfg.compress
    return bool(e.export_tflite or e.export_onnx or e.keras_int8 or e.prune_sparsity)


def size_on_disk(path: str) -> tuple[int, int]:
    """(bytes, gzip bytes) of a file, or summed over a folder's files; gzip at level 9 per
    file, as TFMOT's guide measures pruned models."""
    files = [path] if os.path.isfile(path) else [
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    raw = compressed = 0
    for name in files:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                raw += len(chunk)
                compressed += len(packer.compress(chunk))
        compressed += len(packer.flush())
    return raw, compressed


def saved_model_candidate(name: str, export_dir: str) -> Candidate:
    client = client_lib.ServingClient(export_dir)

    def predict(images: np.ndarray) -> np.ndarray:
        # The pipeline's floats are uint8 / 255, so rounding recovers the pixels exactly.
        pixels = tf.constant(np.round(images * 255.0).astype(np.uint8))
        return client.probabilities(signatures.PIXELS, pixels)
    return Candidate(name, f"SavedModel {signatures.PIXELS.name}", client.model_dir, predict)


def tflite_candidate(path: str, mode: str) -> Candidate:
    predictor = tflite.InterpreterPredictor(path)
    return Candidate(f"tflite_{mode}", "TFLite interpreter", path, predictor,
                     {"tensor_types": predictor.tensor_types()})


def onnx_candidate(path: str) -> Candidate:
    return Candidate("onnx", onnx_export.runtime_name(), path,
                     onnx_export.RuntimePredictor(path), {"opset": onnx_export.OPSET})


def keras_int8_candidate(classifier: TransferClassifier, image_size: int,
                         folder: str, export_tta: bool = False) -> Candidate:
    """Keras int8 on a copy sharing the classifier's (unquantizable) backbone, with
    `export_tta` flip-averaged; raises ValueError when nothing can be quantized or Keras
    refuses (e.g. a float16 compute dtype)."""
    quantized = classifier.clone(share_backbone=True)
    head = quantized.head
    if not any(isinstance(layer, QUANTIZABLE) for layer in head.layers):
        raise ValueError("no Dense or EinsumDense layer to quantize")
    quantized.quantize("int8", filters=lambda layer: isinstance(layer, QUANTIZABLE))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "classifier.weights.h5")
    quantized.save_weights(path)
    served = tta.for_export(quantized, export_tta)
    call = tf.function(lambda images: served(images, training=False), input_signature=[
        tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])
    layers = [layer.name for layer in head.layers if layer.quantization_mode == "int8"]
    return Candidate("keras_int8", "Keras (in-process)", path,
                     lambda images: call(images).numpy(), {"quantized_layers": layers})


def measure(candidate: Candidate, dataset, class_names, timing_images: np.ndarray) -> dict:
    """The row of one compressed model: test metrics, size, latency and throughput."""
    labels, probabilities = splits.predict_batches(candidate.predict, dataset)
    metrics = classification_metrics.compute(labels, probabilities, class_names)
    speed = performance.speed(lambda: candidate.predict(timing_images[:1]),
                              lambda: candidate.predict(timing_images), len(timing_images),
                              TIMING_REPEATS)
    size, gzip_size = size_on_disk(candidate.path)
    row = {"variant": candidate.name, "runtime": candidate.runtime, "path": candidate.path,
           "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
           "size_bytes": size, "gzip_size_bytes": gzip_size,
           "latency_p50_ms": speed["latency_ms_p50"], "latency_p95_ms": speed["latency_ms_p95"],
           "throughput_images_per_s": speed["throughput_images_per_s"], **candidate.details}
    logging.info("Compression row %s", row)
    return row


def flag_drops(rows: list[dict], tolerance: float) -> list[dict]:
    """Adds accuracy_drop (from the first row, the baseline) and flagged to every row."""
    baseline = rows[0]["accuracy"]
    for row in rows:
        row["accuracy_drop"] = baseline - row["accuracy"]
        row["flagged"] = row["accuracy_drop"] > tolerance + 1e-9  # k/N accuracies: no fuzz
    return rows


def _timing_images(dataset, batch: int) -> np.ndarray:
    images, _ = next(dataset.unbatch().batch(batch).as_numpy_iterator())
    return np.resize(images, (batch,) + images.shape[1:])  # repeats a short split


def _candidates(classifier, data: DataBundle, cfg: RunConfig, skipped: list):
    """Yields each requested compressed model (with --export_tta, of the flip average, as
    the SavedModel is); one that cannot be built is recorded in `skipped` with its reason,
    so a finished training is never lost to it."""
    folder = os.path.join(cfg.output_dir, run_folder.TFLITE)
    served = tta.for_export(classifier, cfg.export.export_tta)
    calibration = None
    for mode in cfg.compress.export_tflite:
        if mode == "int8" and calibration is None:
            calibration = tflite.representative_images(
                data.train_unbatched, data.sizes["train"], cfg.compress.representative_examples,
                cfg.seed)
        try:
            path = tflite.write_model(served, mode, folder, calibration)
        except Exception as e:  # ConverterError (not public API) or a calibration RuntimeError
            skipped.append({"variant": f"tflite_{mode}", "reason": first_line(e)})
            continue
        yield tflite_candidate(path, mode)
    if cfg.compress.export_onnx:
        try:
            candidate = onnx_candidate(onnx_export.write_model(
                served, cfg.data.image_size, os.path.join(cfg.output_dir, run_folder.ONNX)))
        except Exception as e:  # tf2onnx's and onnxruntime's errors have no common base
            skipped.append({"variant": "onnx", "reason": first_line(e)})
        else:
            yield candidate
    if cfg.compress.keras_int8:
        try:
            candidate = keras_int8_candidate(classifier, cfg.data.image_size,
                                             os.path.join(cfg.output_dir, run_folder.KERAS_INT8),
                                             cfg.export.export_tta)
        except ValueError as e:
            skipped.append({"variant": "keras_int8", "reason": first_line(e)})
        else:
            yield candidate


def _pruning_block(pruned: pruning.PrunedModel, saved_model_dir: str) -> dict:
    weights, weights_gzip = size_on_disk(os.path.join(pruned.export_dir, "variables"))
    float_weights, float_gzip = size_on_disk(os.path.join(saved_model_dir, "variables"))
    return {**pruned.summary, "variables_bytes": weights, "variables_gzip_bytes": weights_gzip,
            "float_variables_bytes": float_weights, "float_variables_gzip_bytes": float_gzip}


def compress_and_evaluate(classifier: TransferClassifier, data: DataBundle,
                          cfg: RunConfig, saved_model_dir: str) -> dict | None:
    """Builds, evaluates and times every requested compressed model next to the float SavedModel;
    writes and returns compression.json's content. None when nothing is requested."""
    if not requested(cfg):
        return None
    split = "test" if data.test is not None else "validation"
    dataset = data.test if data.test is not None else data.validation
    if dataset is None:
        raise DataError("--export_tflite, --export_onnx, --keras_int8 and --prune_sparsity "
                        "evaluate on the test or validation split, and there is neither")
    saved_model_dir = resolve_saved_model(saved_model_dir)
    timing_images = _timing_images(dataset, cfg.data.batch_size)

    def row(candidate: Candidate) -> dict:
        return measure(candidate, dataset, data.class_names, timing_images)

    skipped = []
    rows = [row(saved_model_candidate(BASELINE, saved_model_dir))]
    rows += [row(c) for c in _candidates(classifier, data, cfg, skipped)]
    pruning_block = None
    if cfg.compress.prune_sparsity:
        pruned = pruning.prune_and_export(classifier, data, cfg)
        rows.append(row(saved_model_candidate("pruned", pruned.export_dir)))
        pruning_block = _pruning_block(pruned, saved_model_dir)
    result = {"split": split, "num_examples": data.sizes[split],
              "baseline": BASELINE, "tolerance": cfg.compress.compression_tolerance,
              "serving_batch": len(timing_images), "device": performance.device_name(),
              "variants": flag_drops(rows, cfg.compress.compression_tolerance),
              "skipped": skipped, "pruning": pruning_block}
    atomic.write_json(os.path.join(cfg.output_dir, run_folder.COMPRESSION_JSON), result,
                      indent=2, sort_keys=True)
    return result
