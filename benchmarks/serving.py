"""Exported SavedModel throughput / in-process Keras predict; latency at batch 1; TFLite
variants against float.

The classifier (Lite0 + head) is built by tftransfer's stages and exported by
export.export_saved_model. export/measure.py times both the in-memory model
(predict_on_batch on float pixels) and the export's `serving_default` (encoded PNG bytes,
decoded and resized in the graph, as TF Serving runs it): latency p50/p95 at batch 1 and
throughput at the serving batch. The export's `serving_pixels` signature (uint8 pixels, no
decoding) is timed here too. Then the TFLite variants of tftransfer/tflite.py: file size
and batch-1 latency p50 of each, as ratios to the float variant (their accuracy is
compression.py's to measure, on a trained model).

    python3 benchmarks/serving.py [--quick] [--image_size=224] [--serving_batch=32]
"""
from __future__ import annotations

import os
import statistics

import _common

from tftransfer.evaluate import performance


def _add_arguments(parser) -> None:
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--serving_batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=50)


def _latencies_ms(call, repeats: int) -> list[float]:
    return [seconds * 1000 for seconds in performance.timings(call, repeats)]


def _p(values: list[float], q: int) -> float:
    import numpy as np
    return float(np.percentile(values, q))


def _tflite_table(classifier, data, size: int, repeats: int, folder: str) -> None:
    from tftransfer.compress import tflite

    calibration = tflite.representative_images(data.train_unbatched, size=data.sizes["train"],
                                               count=32, seed=0)
    one = calibration[:1]
    rows = {}
    for mode in tflite.MODES:
        path = tflite.write_model(classifier, mode, folder, calibration)
        predictor = tflite.InterpreterPredictor(path)
        rows[mode] = (os.path.getsize(path),
                         statistics.median(_latencies_ms(lambda: predictor(one), repeats)))
    size_float, latency_float = rows["float"]
    for mode, (size_bytes, latency) in rows.items():
        print(f"tflite {mode}: {size_bytes / 2**20:.2f} MB ({size_bytes / size_float:.2f}x "
              f"float), batch-1 latency p50 {latency:.2f} ms ({latency / latency_float:.2f}x "
              f"float)")


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    size, batch, repeats = (32, 8, 5) if args.quick else (
        args.image_size, args.serving_batch, args.repeats)
    _common.print_machine()
    cfg = _common.real_config(train_split="train[:640]", image_size=size, batch_size=batch)
    import numpy as np
    import tensorflow as tf

    from tftransfer.data import pipeline as data_lib
    from tftransfer.export import client, measure, saved_model as export, signatures
    from tftransfer.model import classifier as model_lib

    data = data_lib.load_data(cfg.data, cfg.seed, "")
    classifier = model_lib.build_model(cfg, data.num_classes)
    export_dir = export.export_saved_model(classifier, data.class_names, size,
                                           classifier.backbone.module,
                                           os.path.join(cfg.output_dir, "saved_model"))
    measured = measure.performance_block(classifier, export_dir, size, batch, repeats)
    keras_speed, saved_speed = measured["keras_model"], measured["saved_model"]
    for name, speed in (("keras predict", keras_speed), ("saved_model bytes", saved_speed)):
        print(f"{name}: {speed['throughput_images_per_s']:.1f} images/s at batch {batch}; "
              f"batch-1 latency p50 {speed['latency_ms_p50']:.2f} ms, "
              f"p95 {speed['latency_ms_p95']:.2f} ms")
    pixels = tf.constant(np.full((batch, size, size, 3), 128, np.uint8))
    serve_pixels = client.ServingClient(export_dir).caller(signatures.PIXELS)
    pixel_seconds = statistics.median(_latencies_ms(lambda: serve_pixels(pixels),
                                                    max(3, repeats // 5))) / 1000
    pixel_ratio = batch / pixel_seconds / keras_speed["throughput_images_per_s"]
    print(f"saved_model pixels: {batch / pixel_seconds:.1f} images/s "
          f"({pixel_ratio:.3f}x keras predict)")
    _tflite_table(classifier, data, size, repeats, os.path.join(cfg.output_dir, "tflite"))
    ratio = saved_speed["throughput_images_per_s"] / keras_speed["throughput_images_per_s"]
    _common.goal(ratio >= 0.95, ">= 0.95 (SavedModel bytes signature, decoding included)")
    _common.report("serving", ratio)


if __name__ == "__main__":
    main()
