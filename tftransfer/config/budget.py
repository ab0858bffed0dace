"""The time budget (`--time_budget`) and the run's plan, from measured step times (pure Python).

A budgeted run measures what one training step of each candidate configuration costs on
this machine, then splits what is left of the budget: first it reserves evaluation and
export, then one full training of the starting point (the run's own flags, at --epochs),
and the search gets the rest. After the search the final training's epochs are recomputed
for the configuration the search chose, from the time actually left.
"""
from __future__ import annotations

import dataclasses
import math
import re

from tftransfer.config.errors import UserError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
SAFETY = 0.05               # of the remaining budget, kept back for what estimates miss
EXPORT_SECONDS = 20.0       # SavedModel export, its serving timings and the report (CPU)
EVALUATION_PASSES = 1       # each evaluated split is predicted once for its metrics
TRIAL_EPOCHS = 2            # a trial: one head epoch and one fine-tune epoch, or 2 frozen
# ...or more, on a training subset so small that 2 epochs are a few dozen steps: then the
# fastest-converging configurations win every trial (a frozen head without augmentation
# beat the augmented start at 26 steps, then lost to it over a full training).
MIN_TRIAL_STEPS = 100
MAX_TRIAL_EPOCHS = 10
TARGET_TRIALS = 8           # a search smaller data fractions buy first
MIN_TRIALS = 3              # fewer than this and the search is not worth its time
MIN_TRIAL_EXAMPLES = 1000   # the smallest training subset a trial ranks on
MAX_TRIALS = 60
MAX_EPOCH_FACTOR = 3        # the final training runs at most this many times --epochs
# With the resolution searched, the starting point trains at the largest size whose
# --epochs fit in this share of the time left (else the smallest): securing a 224-px start
# for small images would leave a small budget no search and few epochs. Within the same
# share the final training is secured more than --epochs, up to MAX_EPOCH_FACTOR times:
# a search that leaves it only --epochs costs more than it finds in small budgets (3-minute
# 400-image folder: 85.5 % after a 4-trial search, 88.0 % with the final training's epochs
# filled, 91.5 % with no search at all).
START_SHARE = 0.5
# Bounds on how much slower (or faster) real trials may run than their estimate, when
# the search and the final training are re-sized with it.
MIN_SLOWDOWN, MAX_SLOWDOWN = 0.7, 3.0


class BudgetTooSmall(UserError):
    """The budget cannot hold one epoch of the cheapest configuration."""


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
    setup: float                    # building and tracing one model (per trial)
    # Reading, decoding and augmenting one training batch: on a few cores it competes with
    # the steps for the same CPUs, so an epoch on images is charged both.
    input: float = 0.0
    # Other resolutions a search tries: {image size: its steps' time / the measured ones'}.
    scale: dict[int, float] = dataclasses.field(default_factory=dict)


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
    phases = 2 if head else 1  # each phase compiles and traces its own steps
    return (phases * times.setup + head * epoch_seconds(times, work, 0, fraction)
            + (epochs - head) * epoch_seconds(times, work, depth, fraction))


def trial_epochs(work: Workload, fraction: float) -> int:
    """A trial's epochs on `fraction` of the training split: TRIAL_EPOCHS, or as many as
    MIN_TRIAL_STEPS optimizer steps take (at most MAX_TRIAL_EPOCHS)."""
    steps = max(work.batches(work.train * fraction), 1)
    return min(max(TRIAL_EPOCHS, math.ceil(MIN_TRIAL_STEPS / steps)), MAX_TRIAL_EPOCHS)


def trial_seconds(times: StepTimes, work: Workload, depth: int, fraction: float,
                  cached: bool) -> float:
    """A trial: frozen, trial_epochs() epochs (on cached features when `cached`); else one
    head epoch, then the rest fine-tuned (search/tuning.py)."""
    return training_seconds(times, work, depth, trial_epochs(work, fraction), 1, fraction,
                            cached and depth == 0)


def extraction_seconds(times: StepTimes, work: Workload, fraction: float) -> float:
    """Computing the cached features of the search subset and the validation split once."""
    return times.forward * (work.batches(work.train * fraction) + work.batches(work.validation))


def final_seconds(times: StepTimes, work: Workload, depth: int, epochs: int,
                  head_epochs: int) -> float:
    """The final training: its head epochs come first and are never all of it."""
    return training_seconds(times, work, depth, epochs, min(head_epochs, max(epochs - 1, 0)))


def _epochs_within(seconds: float, times, work, depth: int, head_epochs: int,
                   most: int) -> int:
    """The most epochs (1..most) of the final training that fit in `seconds`; 1 if none."""
    fitting = [e for e in range(1, most + 1)
               if final_seconds(times, work, depth, e, head_epochs) <= seconds]
    return max(fitting, default=1)


@dataclasses.dataclass(frozen=True)
class Plan:
    budget: float
    spent: float                    # before planning: earlier attempts, start-up, measuring
    reserve: float                  # evaluation and export
    final: float                    # secured for the final training
    search: float                   # the search's share; 0: no search
    trials: int
    search_fraction: float
    trial_epochs: int
    start_epochs: int               # the starting point's final epochs within `final`
    trial_seconds: float            # a trial's estimated seconds, on average
    why: str
    depths: tuple[int, ...] | None = None   # the fine-tune depths the search may afford
    image_size: int | None = None           # the starting point's, when sizes are searched

    def to_dict(self) -> dict:
        # Rounded for reading, finely enough that a resumed run follows the same plan.
        return {k: round(v, 4) if isinstance(v, float) else v
                for k, v in dataclasses.asdict(self).items()}


def _available(budget: float, spent: float, reserve: float) -> float:
    return (budget - spent) * (1 - SAFETY) - reserve


def _smallest_budget(spent: float, reserve: float, cheapest_epoch: float) -> float:
    return spent + (reserve + cheapest_epoch) / (1 - SAFETY)


def _mean_trial(times, work, depths, fraction, cache_frozen, sizes=()) -> float:
    """A random trial's expected seconds: the depths and resolutions drawn independently."""
    costs = [trial_seconds(at_size(times, s), work, d, fraction, cache_frozen and d == 0)
             for d in depths for s in (sizes or (None,))]
    return sum(costs) / len(costs)


def _search_fraction(times, work, depths, cache_frozen, seconds: float, sizes=()) -> float:
    """The largest data fraction that buys TARGET_TRIALS, down to MIN_TRIAL_EXAMPLES or
    to where TRIAL_EPOCHS are MIN_TRIAL_STEPS (below, trials take more epochs instead)."""
    examples = max(MIN_TRIAL_EXAMPLES, MIN_TRIAL_STEPS / TRIAL_EPOCHS * work.batch_size)
    smallest = min(1.0, examples / max(work.train, 1))
    fraction = 1.0
    while (fraction > smallest and TARGET_TRIALS
           * _mean_trial(times, work, depths, fraction, cache_frozen, sizes) > seconds):
        fraction = max(smallest, fraction / 2)
    return fraction


def plan_run(budget: float, spent: float, times: StepTimes, work: Workload,
             start_depth: int, start_epochs: int, depths: tuple[int, ...] | None,
             cache_frozen: bool, start_head_epochs: int = 0, sizes: tuple[int, ...] = ()
             ) -> Plan:
    """The plan for what is left of `budget`; `depths`: the space's fine-tune depths, or
    None without a search; `cache_frozen`: frozen trials may train on cached features;
    `sizes`: the resolutions the search tries (none: only the run's own)."""
    reserve = reserve_seconds(times, work)
    available = _available(budget, spent, reserve)
    cheapest = min(epoch_seconds(at_size(times, s), work, d)
                   for d in (depths or ()) + (start_depth,) for s in sizes or (None,))
    if available < times.setup + cheapest:
        need = _smallest_budget(spent, reserve, times.setup + cheapest)
        raise BudgetTooSmall(
            f"--time_budget: {format_duration(budget)} cannot hold one training epoch here "
            f"({format_duration(spent)} spent before training, about "
            f"{format_duration(reserve + times.setup + cheapest)} for one epoch, evaluation "
            f"and export); the smallest budget that fits is about {format_duration(need)}")
    start = _Start(times, work, start_depth, start_epochs, start_head_epochs, sizes)
    common = dict(budget=budget, spent=spent, reserve=reserve, trial_epochs=TRIAL_EPOCHS)
    if depths is not None:
        size, epochs, final = start.within(START_SHARE * available if sizes else available)
        epochs, final = start.filled(size, START_SHARE * available, epochs, final)
        searched = _search_plan(times, work, depths, start_depth, cache_frozen, sizes,
                                available - final)
        if searched is not None:
            return Plan(**{**common, **searched}, final=final, start_epochs=epochs,
                        image_size=size)
        why = (f"the budget left after training the starting point holds fewer than "
               f"{MIN_TRIALS} trials")
    else:
        why = "no search asked for"
    size, epochs, _ = start.within(available)
    return Plan(**common, final=available, search=0.0, trials=0, search_fraction=1.0,
                start_epochs=epochs, trial_seconds=0.0, why=why, image_size=size)


def _search_plan(times, work, depths, start_depth, cache_frozen, sizes,
                 search: float) -> dict | None:
    """The search's part of the plan in `search` seconds, or None if it holds too few
    trials even without the dearest depths."""
    for searched in _cheaper_first(times, work, depths, start_depth, cache_frozen):
        fraction = _search_fraction(times, work, searched, cache_frozen, search, sizes)
        extraction = (sum(extraction_seconds(at_size(times, s), work, fraction)
                          for s in sizes or (None,))
                      if cache_frozen and 0 in searched else 0.0)
        mean_trial = _mean_trial(times, work, searched, fraction, cache_frozen, sizes)
        trials = int((search - extraction) // mean_trial)
        if trials >= MIN_TRIALS:
            left_out = sorted(set(depths) - set(searched))
            return dict(search=search, trials=min(trials, MAX_TRIALS),
                        search_fraction=fraction, trial_seconds=mean_trial,
                        trial_epochs=trial_epochs(work, fraction),
                        why="the starting point's training secured; the rest searches"
                            + (f", without the depths {left_out} it cannot afford"
                               if left_out else ""),
                        depths=tuple(searched))
    return None


@dataclasses.dataclass(frozen=True)
class _Start:
    """The starting point's final training: the run's own flags."""
    times: StepTimes
    work: Workload
    depth: int
    epochs: int
    head_epochs: int
    sizes: tuple[int, ...]      # the resolutions it may train at; none: the run's own

    def within(self, seconds: float) -> tuple[int | None, int, float]:
        """(its resolution, its epochs, their seconds) in `seconds`: the largest size whose
        --epochs fit (else the smallest), then as many of the epochs as fit."""
        size = start_image_size(seconds, self.times, self.work, self.depth, self.epochs,
                                self.head_epochs, self.sizes)
        times = at_size(self.times, size)
        epochs = _epochs_within(seconds, times, self.work, self.depth, self.head_epochs,
                                self.epochs)
        return size, epochs, final_seconds(times, self.work, self.depth, epochs,
                                           self.head_epochs)

    def filled(self, size: int | None, seconds: float, epochs: int,
               secured: float) -> tuple[int, float]:
        """(epochs, their seconds): the `epochs` already `secured` at `size`, or more, up
        to MAX_EPOCH_FACTOR x --epochs, as fit in `seconds`."""
        times = at_size(self.times, size)
        more = _epochs_within(seconds, times, self.work, self.depth, self.head_epochs,
                              MAX_EPOCH_FACTOR * self.epochs)
        if more <= epochs:
            return epochs, secured
        return more, final_seconds(times, self.work, self.depth, more, self.head_epochs)


def start_image_size(seconds: float, times: StepTimes, work: Workload, depth: int,
                     epochs: int, head_epochs: int, sizes: tuple[int, ...]) -> int | None:
    """The starting point's resolution among the searched `sizes` (None: not searched):
    the largest whose `epochs` fit in `seconds`, else the smallest."""
    if not sizes:
        return None

    def fits(size):
        return (final_seconds(at_size(times, size), work, depth, epochs, head_epochs)
                <= seconds)
    return max((s for s in sizes if fits(s)), default=min(sizes))


def _cheaper_first(times, work, depths, start_depth, cache_frozen):
    """The space's depths, then ever fewer: the dearest dropped first, the start's kept."""
    def cost(depth):
        return trial_seconds(times, work, depth, 1.0, cache_frozen and depth == 0)
    kept = list(depths)
    while kept:
        yield tuple(kept)
        droppable = [d for d in kept if d != start_depth]
        if not droppable:
            return
        kept.remove(max(droppable, key=cost))


def plan_from_dict(saved: dict) -> Plan:
    depths = saved.get("depths")
    return Plan(**{**saved, "depths": None if depths is None else tuple(depths)})


def times_to_dict(times: StepTimes) -> dict:
    return {**dataclasses.asdict(times), "train": {str(d): t for d, t in times.train.items()},
            "scale": {str(s): f for s, f in times.scale.items()}}


def times_from_dict(saved: dict) -> StepTimes:
    return StepTimes(**{**saved, "train": {int(d): t for d, t in saved["train"].items()},
                        "scale": {int(s): f for s, f in saved.get("scale", {}).items()}})


def interpolate_depths(train: dict[int, float], depths, num_blocks: int) -> dict[int, float]:
    """Step times for every depth in `depths`, from those measured in `train`: a depth not
    measured gets the linear interpolation between its nearest measured neighbours (-1,
    every block, counts as `num_blocks`)."""
    def blocks(depth):
        return num_blocks if depth == -1 else depth
    known = sorted((blocks(d), t) for d, t in train.items())
    return {**{depth: _interpolate(known, blocks(depth)) for depth in depths}, **train}


def final_epochs(seconds_left: float, times: StepTimes, work: Workload, depth: int,
                 configured_epochs: int, head_epochs: int = 0) -> int:
    """Final training epochs of the chosen configuration that fit in `seconds_left`: at
    least 1, at most MAX_EPOCH_FACTOR x --epochs."""
    return _epochs_within(seconds_left, times, work, depth, head_epochs,
                          MAX_EPOCH_FACTOR * configured_epochs)
