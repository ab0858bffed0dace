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
TARGET_TRIALS = 8           # a search smaller data fractions buy first
MIN_TRIALS = 3              # fewer than this and the search is not worth its time
MIN_TRIAL_EXAMPLES = 1000   # the smallest training subset a trial ranks on
MAX_TRIALS = 60
MAX_EPOCH_FACTOR = 3        # the final training runs at most this many times --epochs
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


def trial_seconds(times: StepTimes, work: Workload, depth: int, fraction: float,
                  cached: bool) -> float:
    """A trial: frozen, TRIAL_EPOCHS epochs (on cached features when `cached`); else one
    head epoch, then the rest fine-tuned (search/tuning.py)."""
    return training_seconds(times, work, depth, TRIAL_EPOCHS, 1, fraction,
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

    def to_dict(self) -> dict:
        # Rounded for reading, finely enough that a resumed run follows the same plan.
        return {k: round(v, 4) if isinstance(v, float) else v
                for k, v in dataclasses.asdict(self).items()}


def _available(budget: float, spent: float, reserve: float) -> float:
    return (budget - spent) * (1 - SAFETY) - reserve


def _smallest_budget(spent: float, reserve: float, cheapest_epoch: float) -> float:
    return spent + (reserve + cheapest_epoch) / (1 - SAFETY)


def _mean_trial(times, work, depths, fraction, cache_frozen) -> float:
    costs = [trial_seconds(times, work, d, fraction, cache_frozen and d == 0) for d in depths]
    return sum(costs) / len(costs)


def _search_fraction(times, work, depths, cache_frozen, seconds: float) -> float:
    """The largest data fraction (down to MIN_TRIAL_EXAMPLES) that buys TARGET_TRIALS."""
    smallest = min(1.0, MIN_TRIAL_EXAMPLES / max(work.train, 1))
    fraction = 1.0
    while (fraction > smallest and TARGET_TRIALS
           * _mean_trial(times, work, depths, fraction, cache_frozen) > seconds):
        fraction = max(smallest, fraction / 2)
    return fraction


def plan_run(budget: float, spent: float, times: StepTimes, work: Workload,
             start_depth: int, start_epochs: int, depths: tuple[int, ...] | None,
             cache_frozen: bool, start_head_epochs: int = 0) -> Plan:
    """The plan for what is left of `budget`; `depths`: the space's fine-tune depths, or
    None without a search; `cache_frozen`: frozen trials may train on cached features."""
    reserve = evaluation_seconds(times, work) + EXPORT_SECONDS
    available = _available(budget, spent, reserve)
    cheapest = min(epoch_seconds(times, work, d) for d in (depths or ()) + (start_depth,))
    if available < times.setup + cheapest:
        need = _smallest_budget(spent, reserve, times.setup + cheapest)
        raise BudgetTooSmall(
            f"--time_budget: {format_duration(budget)} cannot hold one training epoch here "
            f"({format_duration(spent)} spent before training, about "
            f"{format_duration(reserve + times.setup + cheapest)} for one epoch, evaluation "
            f"and export); the smallest budget that fits is about {format_duration(need)}")
    epochs = _epochs_within(available, times, work, start_depth, start_head_epochs,
                            start_epochs)
    final = final_seconds(times, work, start_depth, epochs, start_head_epochs)
    no_search = dict(budget=budget, spent=spent, reserve=reserve, search=0.0, trials=0,
                     search_fraction=1.0, trial_epochs=TRIAL_EPOCHS, start_epochs=epochs,
                     trial_seconds=0.0)
    if depths is None:
        return Plan(**no_search, final=available, why="no search asked for")
    search = available - final
    for searched in _cheaper_first(times, work, depths, start_depth, cache_frozen):
        fraction = _search_fraction(times, work, searched, cache_frozen, search)
        extraction = (extraction_seconds(times, work, fraction)
                      if cache_frozen and 0 in searched else 0.0)
        mean_trial = _mean_trial(times, work, searched, fraction, cache_frozen)
        trials = int((search - extraction) // mean_trial)
        if trials >= MIN_TRIALS:
            left_out = sorted(set(depths) - set(searched))
            return Plan(budget=budget, spent=spent, reserve=reserve, final=final,
                        search=search, trials=min(trials, MAX_TRIALS),
                        search_fraction=fraction, trial_epochs=TRIAL_EPOCHS,
                        start_epochs=epochs, trial_seconds=mean_trial,
                        why=f"{epochs} epoch(s) of the starting point secured; the rest "
                            f"searches" + (f", without the depths {left_out} it cannot "
                                           f"afford" if left_out else ""),
                        depths=tuple(searched))
    return Plan(**no_search, final=available,
                why=f"the budget left after training the starting point for {epochs} "
                    f"epoch(s) holds fewer than {MIN_TRIALS} trials")


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
    return {**dataclasses.asdict(times), "train": {str(d): t for d, t in times.train.items()}}


def times_from_dict(saved: dict) -> StepTimes:
    return StepTimes(**{**saved, "train": {int(d): t for d, t in saved["train"].items()}})


def interpolate_depths(train: dict[int, float], depths, num_blocks: int) -> dict[int, float]:
    """Step times for every depth in `depths`, from those measured in `train`: a depth not
    measured gets the linear interpolation between its nearest measured neighbours (-1,
    every block, counts as `num_blocks`)."""
    def blocks(depth):
        return num_blocks if depth == -1 else depth
    known = sorted((blocks(d), t) for d, t in train.items())
    filled = dict(train)
    for depth in depths:
        if depth in filled:
            continue
        x = blocks(depth)
        below = max((k for k in known if k[0] <= x), default=known[0])
        above = min((k for k in known if k[0] >= x), default=known[-1])
        share = 0.0 if above[0] == below[0] else (x - below[0]) / (above[0] - below[0])
        filled[depth] = below[1] + share * (above[1] - below[1])
    return filled


def final_epochs(seconds_left: float, times: StepTimes, work: Workload, depth: int,
                 configured_epochs: int, head_epochs: int = 0) -> int:
    """Final training epochs of the chosen configuration that fit in `seconds_left`: at
    least 1, at most MAX_EPOCH_FACTOR x --epochs."""
    return _epochs_within(seconds_left, times, work, depth, head_epochs,
                          MAX_EPOCH_FACTOR * configured_epochs)
