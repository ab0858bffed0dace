"""What a training step of each candidate configuration costs on this machine: a few real
steps each, on a real training batch, at the run's resolution and batch size.

Measured on a separately loaded hub module, so the steps taken leave the pretrained
weights every later stage starts from untouched.
"""
from __future__ import annotations

import time

import tensorflow as tf
from absl import logging

from tftransfer.config import budget as budget_lib
from tftransfer.model import backbone as backbone_lib, classifier as model_lib
from tftransfer.model import compile as compile_lib

STEPS = 4           # timed after a first call of WARM_STEPS, which traces and warms up
WARM_STEPS = 2
# The fastest of a few timings: on a shared machine a neighbour's load only adds time, and
# one slow timing (2.7x, seen) would shrink the whole plan.
REPEATS = 3
CHEAP_TIMING = 2.0  # seconds: a timing that takes longer is not repeated (start-up counts)
INPUT_BATCHES = 16  # the pipeline's prefetch buffer hides the cost of the first few


def _per_step(run, steps: int = STEPS) -> tuple[float, float]:
    """(seconds of a first, warming call, seconds per step of a `steps`-step call), where
    `run(n)` runs n steps through Keras's own loop, as training and evaluation do. The
    first steps after a trace run several times slower, hence the warm-up."""
    start = time.perf_counter()
    run(WARM_STEPS)
    first = time.perf_counter() - start
    seconds = []
    while len(seconds) < REPEATS and (not seconds or seconds[0] * steps < CHEAP_TIMING):
        start = time.perf_counter()
        run(steps)
        seconds.append((time.perf_counter() - start) / steps)
    return first, min(seconds)


def _compile(model, cfg, num_classes: int, steps_per_execution: int = 1) -> None:
    compile_lib.compile_for_phase(model, cfg.train, num_classes, cfg.head.label_smoothing,
                                  cfg.train.learning_rate, 1000, 0, steps_per_execution)


def _input_seconds(dataset, batches: int = INPUT_BATCHES) -> float:
    """Seconds per training batch of the pipeline alone, after its first batch."""
    iterator = iter(dataset.repeat())
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - start) / batches


# Budgets below this do not time the deepest fine-tuning: tracing and timing it took
# about 27 s, 15 % of a 3-minute budget, where it is rarely affordable anyway. Its step is
# then taken as FULL_BACKPROP_FACTOR frozen steps and its tracing as FULL_TRACE_FACTOR
# frozen ones (on Lite0, five timings each at 32, 64 and 224 px: steps 3.2-6.9x, median
# 4.2x, as the update of every weight costs the same at any size; tracing 5.5-9.5x), and
# the search's deadline and the final training's stop follow what steps really take.
MEASURE_DEEPEST_BUDGET = 600.0
FULL_BACKPROP_FACTOR = 4.0
FULL_TRACE_FACTOR = 5.0


def _deepest(depths) -> int:
    return -1 if -1 in depths else max(depths)


def _measured_depths(depths, start_depth: int, deepest_too: bool = True) -> set[int]:
    """Frozen, the run's own depth and, with `deepest_too`, the deepest: the others are
    interpolated."""
    return {0, start_depth} | ({_deepest(depths)} if deepest_too else set())


def _with_deepest(measured: dict[int, float], depths, factor: float) -> dict[int, float]:
    """`measured` (by depth) with the deepest of `depths` estimated as `factor` x the
    frozen one's if not timed."""
    deepest = _deepest(depths)
    if deepest in measured:
        return measured
    return {**measured, deepest: measured[0] * factor}


def _by_depth(measured: dict[int, float], depths, num_blocks: int,
              factor: float) -> dict[int, float]:
    """Every depth in `depths`: measured, or interpolated by blocks (the deepest estimated
    when not timed)."""
    return budget_lib.interpolate_depths(_with_deepest(measured, depths, factor), depths,
                                         num_blocks)


def _built(cfg, module, num_classes: int, size: int, depth: int, strategy):
    """(a compiled classifier fine-tuning `depth` blocks at `size` px, seconds it took)."""
    start = time.perf_counter()
    with strategy.scope():
        backbone, width = model_lib.build_backbone(cfg.backbone, size, module)
        model = model_lib.TransferClassifier(
            backbone, model_lib.build_head(width, num_classes, cfg.head), size)
        backbone.set_fine_tune_depth(depth)
        _compile(model, cfg, num_classes)
    return model, time.perf_counter() - start


def _fitting(model, batches):
    return lambda n: model.fit(batches, steps_per_epoch=n, epochs=1, verbose=0)


def _frozen_step(cfg, module, images, labels, num_classes: int, size: int, strategy):
    """Seconds per training step of a frozen backbone at `size` px."""
    model, _ = _built(cfg, module, num_classes, size, 0, strategy)
    batches = tf.data.Dataset.from_tensors((tf.image.resize(images, (size, size)),
                                            labels)).repeat()
    return _per_step(_fitting(model, batches))[1]


def _size_scale(cfg, module, images, labels, num_classes, sizes, frozen: float,
                strategy) -> dict[int, float]:
    """Each searched size's step-time factor against the run's own: a frozen step at each
    smaller size measured (a few seconds each: small steps are cheap, and a factor
    interpolated in pixels was ~20 % high at 128 px), larger ones interpolated."""
    size = cfg.data.image_size
    measured = {size: 1.0}
    for smaller in sorted(s for s in sizes if s < size):
        measured[smaller] = _frozen_step(cfg, module, images, labels, num_classes, smaller,
                                         strategy) / frozen
    return budget_lib.scale_by_pixels(measured, sizes)


def measure(cfg, data, depths, strategy, sizes=(),
            deepest_too: bool = True) -> budget_lib.StepTimes:
    """Step times for frozen training, each fine-tune depth in `depths` (some measured,
    the rest interpolated), inference, a head on features, and the input pipeline;
    `setup`: the mean build-and-first-step seen; `scale`: for each of `sizes`, the
    searched resolutions. Without `deepest_too`, the deepest depth is estimated."""
    images, labels = next(iter(data.train))
    batches = tf.data.Dataset.from_tensors((images, labels)).repeat()
    size, num_classes = cfg.data.image_size, data.num_classes

    def predicting(model):
        return lambda n: model.predict(batches.map(lambda x, y: x), steps=n, verbose=0)
    with strategy.scope():
        module = backbone_lib.load_module(cfg.backbone.hub_handle)
    train, setups, forward, head_step = {}, {}, None, None
    measured = _measured_depths(set(depths), cfg.backbone.fine_tune_depth, deepest_too)
    for depth in sorted(measured, key=lambda d: (d == -1, d)):
        model, built = _built(cfg, module, num_classes, size, depth, strategy)
        first, train[depth] = _per_step(_fitting(model, batches))
        setups[depth] = built + first
        if depth == 0:
            _, forward = _per_step(predicting(model))
            features = tf.data.Dataset.from_tensors(
                (model.backbone(images, training=False), labels)).repeat()
            with strategy.scope():
                head = model_lib.build_head(model.head.input_shape[-1], num_classes, cfg.head)
                _compile(head, cfg, num_classes)
            _, head_step = _per_step(
                lambda n: head.fit(features, steps_per_epoch=n, epochs=1, verbose=0))
    scale = _size_scale(cfg, module, images, labels, num_classes, sizes, train[0], strategy)
    blocks = model.backbone.num_blocks
    train = _by_depth(train, depths, blocks, FULL_BACKPROP_FACTOR)
    setups = _by_depth(setups, depths, blocks, FULL_TRACE_FACTOR)
    times = budget_lib.StepTimes(forward, head_step, train, setups[0],
                                 _input_seconds(data.train), scale,
                                 {d: t for d, t in setups.items() if d})
    logging.info("Step times (s per batch of %d at %d px): train %s (measured at depths "
                 "%s), input %.3f, inference %.3f, head on features %.4f; building a model "
                 "%s s by depth; other sizes x%s", int(images.shape[0]), size,
                 {d: round(t, 3) for d, t in train.items()}, sorted(measured), times.input,
                 forward, head_step, {d: round(t, 1) for d, t in setups.items()},
                 {s: round(f, 3) for s, f in scale.items()})
    return times
