"""The time budget's arithmetic (pure Python): `--time_budget` parsed, and what each part
of a run costs from the step times measured on this machine. The plan that splits a
budget between search and final training is config/budget_plan.py.
"""
from __future__ import annotations

import dataclasses
import math
import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
# SavedModel export, its serving timings and the report (CPU): with evaluation, 4.6-15.5 s
# on six folder runs of Lite0 at 32-224 px, their evaluation estimated at 0.5-4.2 s (20 s
# had left 2-minute runs at 0.83 of their budget).
EXPORT_SECONDS = 12.0
EVALUATION_PASSES = 1       # each evaluated split is predicted once for its metrics
TRIAL_EPOCHS = 2            # a trial: one head epoch and one fine-tune epoch, or 2 frozen
# ...or more, on a training subset so small that 2 epochs are a few dozen steps: then the
# fastest-converging configurations win every trial (a frozen head without augmentation
# beat the augmented start at 26 steps, then lost to it over a full training).
MIN_TRIAL_STEPS = 100
MAX_TRIAL_EPOCHS = 10
# A seed point's trial (hyperrule.py's small-image point: every block fine-tuned) trains
# longer: its learning curve starts low and crosses a frozen start's late (1,079 8-px
# digits, 34 steps an epoch: 0.34 validation after 3 epochs against the frozen start's
# 0.73; 0.81 after 8, 0.92 after 15, and 94.2 % test against 86-88 % frozen).
SEED_TRIAL_STEPS = 300
MAX_SEED_TRIAL_EPOCHS = 20


def parse_duration(text: str) -> float:
    """'90s', '20m', '1.5h' or plain seconds -> seconds; ValueError when malformed."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", text.lower())
    if not match:
        raise ValueError(f"expected a duration such as 90s, 20m or 1.5h, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"must be > 0, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 600:
        return f"{math.ceil(seconds)}s"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)}m"
    return f"{math.ceil(seconds / 360) / 10:g}h"


@dataclasses.dataclass(frozen=True)
class StepTimes:
    """Seconds per batch on this machine, measured at the run's resolution and batch size."""
    forward: float                  # backbone and head on images, no gradient (evaluation)
    head: float                     # a training step of the head on cached features
    train: dict[int, float]         # a training step by fine-tune depth (0: frozen backbone)
    setup: float                    # building and tracing one model, frozen (per trial)
    # Reading, decoding and augmenting one training batch: on a few cores it competes with
    # the steps for the same CPUs, so an epoch on images is charged both.
    input: float = 0.0
    # Other resolutions a search tries: {image size: its steps' time / the measured ones'}.
    scale: dict[int, float] = dataclasses.field(default_factory=dict)
    # Building and tracing a fine-tuning phase, by depth: the backward pass through every
    # block traced for 10-15 s on Lite0 against 1-2 s frozen, at 32 px as at 224.
    fine_tune_setup: dict[int, float] = dataclasses.field(default_factory=dict)

    def setup_at(self, depth: int) -> float:
        return self.fine_tune_setup.get(depth, self.setup) if depth else self.setup


def at_size(times: StepTimes, image_size: int | None) -> StepTimes:
    """The step times at another searched resolution: the backbone's steps and the input
    pipeline's (resizing and augmenting work on pixels) scaled; a head on features and
    building a model taken as they are."""
    factor = times.scale.get(image_size, 1.0) if image_size is not None else 1.0
    if factor == 1.0:
        return times
    return dataclasses.replace(times, forward=times.forward * factor,
                               input=times.input * factor,
                               train={d: t * factor for d, t in times.train.items()})


def scale_by_pixels(measured: dict[int, float], sizes) -> dict[int, float]:
    """Each size's step-time factor, from those `measured` (the run's own size at 1.0
    among them): linear in pixels between the nearest measured sizes."""
    known = sorted((size * size, factor) for size, factor in measured.items())
    return {size: _interpolate(known, size * size) for size in sizes}


def _interpolate(known: list[tuple[float, float]], x: float) -> float:
    """y at x, linear between the nearest of the sorted (x, y) points `known`; the end
    points' y beyond them."""
    below = max((k for k in known if k[0] <= x), default=known[0])
    above = min((k for k in known if k[0] >= x), default=known[-1])
    share = 0.0 if above[0] == below[0] else (x - below[0]) / (above[0] - below[0])
    return below[1] + share * (above[1] - below[1])


@dataclasses.dataclass(frozen=True)
class Workload:
    train: int
    validation: int
    test: int
    batch_size: int

    def batches(self, examples: float) -> int:
        return math.ceil(examples / self.batch_size) if examples > 0 else 0


def epoch_seconds(times: StepTimes, work: Workload, depth: int, fraction: float = 1.0,
                  cached: bool = False) -> float:
    """One training epoch with validation: on cached features (frozen, no augmentation)
    or on images with `depth` top blocks fine-tuned."""
    steps = work.batches(work.train * fraction)
    if cached:
        return steps * times.head + work.batches(work.validation) * times.head
    return (steps * (times.train[depth] + times.input)
            + work.batches(work.validation) * times.forward)


def evaluation_seconds(times: StepTimes, work: Workload) -> float:
    return EVALUATION_PASSES * times.forward * work.batches(work.validation + work.test)


def reserve_seconds(times: StepTimes, work: Workload) -> float:
    """Evaluation and export, after the final training."""
    return evaluation_seconds(times, work) + EXPORT_SECONDS


def training_seconds(times: StepTimes, work: Workload, depth: int, epochs: int,
                     head_epochs: int, fraction: float = 1.0, cached: bool = False) -> float:
    """A model's build and `epochs` epochs, of which the first `head_epochs` train the head
    alone (a frozen backbone: depth 0) before `depth` top blocks are fine-tuned."""
    if depth == 0:
        return times.setup + epochs * epoch_seconds(times, work, 0, fraction, cached)
    head = min(head_epochs, epochs)
    # Each phase compiles and traces its own steps.
    setups = times.setup_at(depth) + (times.setup if head else 0.0)
    return (setups + head * epoch_seconds(times, work, 0, fraction)
            + (epochs - head) * epoch_seconds(times, work, depth, fraction))


def trial_epochs(work: Workload, fraction: float, seed: bool = False) -> int:
    """A trial's epochs on `fraction` of the training split: TRIAL_EPOCHS, or as many as
    MIN_TRIAL_STEPS optimizer steps take (at most MAX_TRIAL_EPOCHS); a `seed` point's:
    as many as SEED_TRIAL_STEPS take (at most MAX_SEED_TRIAL_EPOCHS)."""
    steps = max(work.batches(work.train * fraction), 1)
    least, most = ((SEED_TRIAL_STEPS, MAX_SEED_TRIAL_EPOCHS) if seed
                   else (MIN_TRIAL_STEPS, MAX_TRIAL_EPOCHS))
    return min(max(TRIAL_EPOCHS, math.ceil(least / steps)), most)


def trial_seconds(times: StepTimes, work: Workload, depth: int, fraction: float,
                  cached: bool, seed: bool = False) -> float:
    """A trial: frozen, trial_epochs() epochs (on cached features when `cached`); else one
    head epoch, then the rest fine-tuned (search/tuning.py)."""
    return training_seconds(times, work, depth, trial_epochs(work, fraction, seed), 1,
                            fraction, cached and depth == 0)


def extraction_seconds(times: StepTimes, work: Workload, fraction: float) -> float:
    """Computing the cached features of the search subset and the validation split once."""
    return times.forward * (work.batches(work.train * fraction) + work.batches(work.validation))


def final_seconds(times: StepTimes, work: Workload, depth: int, epochs: int,
                  head_epochs: int) -> float:
    """The final training: its head epochs come first and are never all of it."""
    return training_seconds(times, work, depth, epochs, min(head_epochs, max(epochs - 1, 0)))


_KEYED = ("train", "scale", "fine_tune_setup")   # dicts keyed by an integer


def times_to_dict(times: StepTimes) -> dict:
    saved = dataclasses.asdict(times)
    return {**saved, **{name: {str(k): v for k, v in saved[name].items()} for name in _KEYED}}


def times_from_dict(saved: dict) -> StepTimes:
    return StepTimes(**{**saved, **{name: {int(k): v for k, v in saved.get(name, {}).items()}
                                    for name in _KEYED}})


def interpolate_depths(train: dict[int, float], depths, num_blocks: int) -> dict[int, float]:
    """Step times for every depth in `depths`, from those measured in `train`: a depth not
    measured gets the linear interpolation between its nearest measured neighbours (-1,
    every block, counts as `num_blocks`)."""
    def blocks(depth):
        return num_blocks if depth == -1 else depth
    known = sorted((blocks(d), t) for d, t in train.items())
    return {**{depth: _interpolate(known, blocks(depth)) for depth in depths}, **train}
