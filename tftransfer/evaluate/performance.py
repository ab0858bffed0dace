"""The performance block of metrics.json: measured speed and size, with the device name.

Latency is timed per call at batch 1 (p50/p95 over `repeats` calls after warm-up), and
throughput at the serving batch, for the in-memory Keras model and for the exported
SavedModel's bytes signature (which includes decoding, as TF Serving would).
"""
from __future__ import annotations

import os
import platform
import resource
import time

import keras
import numpy as np
import tensorflow as tf


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"CPU: {model} ({os.cpu_count()} cores)"


def timings(call, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls, after 3 warm-up calls."""
    for _ in range(3):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def speed(call_one, call_batch, batch: int, repeats: int) -> dict:
    """Latency p50/p95 (ms) of `call_one` (batch 1), throughput of `call_batch` (`batch`
    images), each timed after 3 warm-up calls."""
    latencies = np.array(timings(call_one, repeats)) * 1000
    batch_seconds = np.median(timings(call_batch, max(3, repeats // 10)))
    return {"latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p95": float(np.percentile(latencies, 95)),
            "throughput_images_per_s": float(batch / batch_seconds),
            "serving_batch": batch}


def _folder_megabytes(path: str) -> float:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names) / 2**20


def measure(classifier: keras.Model, serve_bytes, export_dir: str, image_size: int,
            serving_batch: int = 32, repeats: int = 30) -> dict:
    """`serve_bytes`: the export's bytes signature as a callable on a batch of encoded
    images (export/client.py); `export_dir`: the version folder it was loaded from."""
    rng = np.random.default_rng(0)
    images = rng.random((serving_batch, image_size, image_size, 3), dtype=np.float32)
    encoded = tf.io.encode_png(tf.cast(images[0] * 255, tf.uint8))
    one_bytes, batch_bytes = tf.stack([encoded]), tf.stack([encoded] * serving_batch)
    return {
        "device": device_name(),
        "keras_model": speed(lambda: classifier.predict_on_batch(images[:1]),
                             lambda: classifier.predict_on_batch(images), serving_batch,
                             repeats),
        "saved_model": speed(lambda: serve_bytes(one_bytes), lambda: serve_bytes(batch_bytes),
                             serving_batch, repeats),
        "parameters": {"total": int(classifier.count_params()),
                       "trainable": int(sum(np.prod(w.shape)
                                            for w in classifier.trainable_weights))},
        "export_megabytes": round(_folder_megabytes(export_dir), 3),
        "peak_host_memory_megabytes": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
