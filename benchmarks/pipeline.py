"""Training throughput through tftransfer's tf.data pipeline / the same model fed the same
batches from memory, with the backbone in every step.

The pipeline is data.load_data's training split with --cache=none, so every epoch reads
TFDS's records, decodes, resizes and augments (the default augmentations) as it trains;
a second pipeline with the default cache (decoded images kept in memory after the first
epoch, augmentation still per batch) is measured too. The in-memory side is one epoch of
the first pipeline's batches, materialised beforehand. One model (frozen Lite0 + head,
compiled by model/compile.py's compile_for_phase) and one train function serve every side;
their epochs take turns. Then the iterator wait: the time `next()` on the pipeline's iterator
takes per step while the model trains between calls (tf.data's performance guide: at most
50 us means the input pipeline is not the bottleneck). Last, each pipeline alone: on a
machine whose cores the model already fills (a CPU-only machine), the pipeline's work can
only share them, so the ratio is bounded by model time / (model time + pipeline time).

    python3 benchmarks/pipeline.py [--quick] [--examples=1920] [--rounds=5] [--image_size=48]
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import _common


def _add_arguments(parser) -> None:
    parser.add_argument("--examples", type=int, default=1920, help="a multiple of 64")
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fine_tune_depth", type=int, default=0)


def _iterator_waits(model, pipeline, steps: int) -> list[float]:
    """Seconds each `next()` on the pipeline blocked, with a training step between calls."""
    iterator = iter(pipeline)
    waits = []
    for _ in range(steps):
        start = time.perf_counter()
        images, labels = next(iterator)
        waits.append(time.perf_counter() - start)
        model.train_on_batch(images, labels)
    return waits


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    examples, size, rounds = (256, 32, 1) if args.quick else (
        args.examples, args.image_size, args.rounds)
    _common.print_machine()
    cfg = _common.real_config(train_split=f"train[:{examples}]", validation_fraction=0.0,
                              image_size=size, batch_size=64, augment=True, cache="none",
                              fine_tune_depth=args.fine_tune_depth)
    from tftransfer.data import pipeline as data_lib
    from tftransfer.model import classifier as model_lib, compile as compile_lib

    data = data_lib.load_data(cfg.data, cfg.seed, "")
    cached_cfg = dataclasses.replace(cfg.data, cache="memory")
    cached = data_lib.load_data(cached_cfg, cfg.seed, "")   # counting labels fills the cache
    memory = _common.in_memory_batches(data.train)
    model = model_lib.build_model(cfg, data.num_classes)
    model.backbone.set_fine_tune_depth(cfg.backbone.fine_tune_depth)
    steps = examples // cfg.data.batch_size
    compile_lib.compile_for_phase(model, cfg.train, data.num_classes, cfg.head.label_smoothing,
                                  cfg.train.learning_rate, steps * (3 * rounds + 1), 0)
    inputs = {"in memory": memory, "pipeline": data.train, "pipeline, cached": cached.train}
    epochs = {name: (lambda ds=ds: model.fit(ds, epochs=1, verbose=0))
              for name, ds in inputs.items()}
    _common.alternate(epochs, 1)  # traces the train function once for all; warms up
    seconds = _common.alternate(epochs, rounds)
    for name, values in seconds.items():
        print(f"{name}: {examples / min(values):.1f} images/s "
              f"(epochs: {', '.join(f'{s:.2f}' for s in values)} s)")
    alone = _common.alternate({name: (lambda ds=inputs[name]: sum(1 for _ in ds))
                               for name in ("pipeline", "pipeline, cached")}, rounds)
    for name, values in alone.items():
        model_seconds = min(seconds["in memory"])
        print(f"{name} alone (no model): {min(values) / steps * 1e3:.1f} ms per batch; with "
              f"no spare core, the bound is {model_seconds / (model_seconds + min(values)):.3f}x")
    for name in ("pipeline", "pipeline, cached"):
        first, *waits = _iterator_waits(model, inputs[name], min(steps, 20))
        print(f"iterator wait per step, {name}: median {statistics.median(waits) * 1e6:.0f} us, "
              f"mean {statistics.mean(waits) * 1e6:.0f} us; first step (fills the shuffle "
              f"buffer) {first * 1e3:.0f} ms")
    cached_ratio = _common.ratio_of_best(seconds["in memory"], seconds["pipeline, cached"])
    print(f"cached pipeline / in memory: {cached_ratio:.3f}x")
    ratio = _common.ratio_of_best(seconds["in memory"], seconds["pipeline"])
    _common.goal(ratio >= 0.95, ">= 0.95 (decode, resize, augment every epoch)")
    _common.report("pipeline", ratio)


if __name__ == "__main__":
    main()
