"""A budgeted run's plan (pure Python): what is left of `--time_budget` is split, from the
costs in config/budget.py. First evaluation and export are reserved, then the starting
point's final training (the run's own flags, at least --epochs), and the search gets the
rest. After the search the final training's epochs are recomputed for the configuration
the search chose, from the time actually left.
"""
from __future__ import annotations

import dataclasses

from tftransfer.config.budget import (
    MIN_TRIAL_STEPS, TRIAL_EPOCHS, StepTimes, Workload, at_size, epoch_seconds,
    extraction_seconds, final_seconds, format_duration, reserve_seconds, trial_epochs,
    trial_seconds)
from tftransfer.config.errors import UserError

SAFETY = 0.05               # of the remaining budget, kept back for what estimates miss
TARGET_TRIALS = 8           # a search smaller data fractions buy first
MIN_TRIALS = 3              # fewer than this and the search is not worth its time
# A search with an informed second point (hyperrule.py's small-image point) is worth
# running for it and the start alone: the two differ in resolution, depth and rates, so
# one small budget can tell which suits the data (8-px digits: 98 % against 88 %).
MIN_SEEDED_TRIALS = 2
MIN_TRIAL_EXAMPLES = 1000   # the smallest training subset a trial ranks on
MAX_TRIALS = 60
MAX_EPOCH_FACTOR = 3        # the plan secures the final training at most this many --epochs
# With the resolution searched, the starting point trains at the largest size whose
# --epochs fit in this share of the time left (else the smallest): securing a 224-px start
# for small images would leave a small budget no search and few epochs. Within the same
# share the final training is secured more than --epochs, up to MAX_EPOCH_FACTOR times:
# a search that leaves it only --epochs costs more than it finds in small budgets (3-minute
# 400-image folder: 85.5 % after a 4-trial search, 88.0 % with the final training's epochs
# filled, 91.5 % with no search at all).
START_SHARE = 0.5
# Once the search is over nothing competes for the time: the final training takes what is
# left, up to this many times --epochs (held to MAX_EPOCH_FACTOR, a 2-minute budget on a
# 400-image folder ended at 0.74 of its time; a 3-minute one, after a search that ran only
# its start, at 0.77).
FINAL_EPOCH_FACTOR = 10
# Bounds on how much slower (or faster) real trials may run than their estimate, when
# the search and the final training are re-sized with it.
MIN_SLOWDOWN, MAX_SLOWDOWN = 0.7, 3.0


class BudgetTooSmall(UserError):
    """The budget cannot hold one epoch of the cheapest configuration."""


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
    start_trial_seconds: float = 0.0        # the search's first trial, the start's
    seed_trial_seconds: tuple[float, ...] = ()   # the seed points' trials, next

    def to_dict(self) -> dict:
        # Rounded for reading, finely enough that a resumed run follows the same plan.
        def rounded(value):
            if isinstance(value, float):
                return round(value, 4)
            return [rounded(v) for v in value] if isinstance(value, tuple) else value
        return {k: rounded(v) for k, v in dataclasses.asdict(self).items()}


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
             cache_frozen: bool, start_head_epochs: int = 0, sizes: tuple[int, ...] = (),
             start_augmented: bool = False,
             seeds: tuple[tuple[int | None, int], ...] = ()) -> Plan:
    """The plan for what is left of `budget`; `depths`: the space's fine-tune depths, or
    None without a search; `cache_frozen`: frozen trials may train on cached features;
    `sizes`: the resolutions the search tries (none: only the run's own);
    `start_augmented`: the starting point augments, so its trial cannot use the cache;
    `seeds`: (resolution, depth) of each point the search tries right after the start."""
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
    if sizes:
        # The final model is evaluated and exported at the starting point's size unless
        # the search picks another (final_config then reserves for that one): reserved at
        # 224 px, a 3-minute plan for 128 px kept back 35 s for 13 s of work.
        size, _, _ = start.within(START_SHARE * available if depths is not None
                                  else available)
        reserve = min(reserve, reserve_seconds(at_size(times, size), work))
        available = _available(budget, spent, reserve)
    common = dict(budget=budget, spent=spent, reserve=reserve, trial_epochs=TRIAL_EPOCHS)
    if depths is not None:
        size, epochs, final = start.within(START_SHARE * available if sizes else available)
        epochs, final = start.filled(size, START_SHARE * available, epochs, final)
        firsts = (_StartTrial(size, start_depth, cache_frozen and not start_augmented),
                  *(_StartTrial(s, d, False, seed=True) for s, d in seeds))
        searched = _search_plan(times, work, depths, firsts, cache_frozen, sizes,
                                available - final)
        if searched is None and seeds:
            # Without the seed points, whose trials train longest: the search then tries
            # none of them (run_search reads that from an empty seed_trial_seconds).
            searched = _search_plan(times, work, depths, firsts[:1], cache_frozen, sizes,
                                    available - final)
        if searched is not None:
            return Plan(**{**common, **searched}, final=final, start_epochs=epochs,
                        image_size=size)
        why = (f"the budget left after training the starting point holds fewer than "
               f"{MIN_TRIALS} trials" + (f", or {MIN_SEEDED_TRIALS} with the seed points"
                                         if seeds else ""))
    else:
        why = "no search asked for"
    size, epochs, _ = start.within(available)
    return Plan(**common, final=available, search=0.0, trials=0, search_fraction=1.0,
                start_epochs=epochs, trial_seconds=0.0, why=why, image_size=size)


@dataclasses.dataclass(frozen=True)
class _StartTrial:
    """One of the search's first trials, the starting point's at full fidelity or a seed
    point's: costed on its own, since a mean over cheap cached trials hid it (a 3-minute
    plan gave a 56 s search 7 trials; the start's alone took 72 s and left the final
    training 3 epochs)."""
    image_size: int | None
    depth: int
    cached: bool
    seed: bool = False          # a seed point's: trained longer (budget.SEED_TRIAL_STEPS)

    def seconds(self, times, work, fraction: float) -> float:
        return trial_seconds(at_size(times, self.image_size), work, self.depth, fraction,
                             self.cached, self.seed)


def _search_plan(times, work, depths, firsts: tuple[_StartTrial, ...], cache_frozen, sizes,
                 search: float) -> dict | None:
    """The search's part of the plan in `search` seconds, or None if it holds too few
    trials, the `firsts` (the starting point's, then the seed points') among them, even
    without the dearest depths. Features are extracted at a size the first time a cached
    trial takes it: the firsts pay for their own sizes, the other trials for the rest."""
    start, fewest = firsts[0], MIN_SEEDED_TRIALS if len(firsts) > 1 else MIN_TRIALS
    for searched in _cheaper_first(times, work, depths, {f.depth for f in firsts},
                                   cache_frozen):
        fraction = _search_fraction(times, work, searched, cache_frozen, search, sizes)

        def extraction(at_sizes) -> float:
            return sum(extraction_seconds(at_size(times, s), work, fraction) for s in at_sizes)
        cached_sizes = set(sizes or (None,)) if cache_frozen and 0 in searched else set()
        first_sizes = {f.image_size for f in firsts if f.cached and f.depth == 0}
        firsts_cost = (extraction(first_sizes)
                       + sum(f.seconds(times, work, fraction) for f in firsts))
        mean_trial = _mean_trial(times, work, searched, fraction, cache_frozen, sizes)
        others = search - firsts_cost - extraction(cached_sizes - first_sizes)
        trials = (len(firsts) + max(int(others // mean_trial), 0)
                  if search >= firsts_cost else 0)
        if trials >= fewest:
            left_out = sorted(set(depths) - set(searched))
            return dict(search=search, trials=min(trials, MAX_TRIALS),
                        start_trial_seconds=start.seconds(times, work, fraction),
                        seed_trial_seconds=tuple(f.seconds(times, work, fraction)
                                                 for f in firsts[1:]),
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


def _cheaper_first(times, work, depths, kept_depths: set[int], cache_frozen):
    """The space's depths, then ever fewer: the dearest dropped first, the first trials'
    (`kept_depths`) kept."""
    def cost(depth):
        return trial_seconds(times, work, depth, 1.0, cache_frozen and depth == 0)
    kept = list(depths)
    while kept:
        yield tuple(kept)
        droppable = [d for d in kept if d not in kept_depths]
        if not droppable:
            return
        kept.remove(max(droppable, key=cost))


def plan_from_dict(saved: dict) -> Plan:
    depths = saved.get("depths")
    return Plan(**{**saved, "depths": None if depths is None else tuple(depths),
                   "seed_trial_seconds": tuple(saved.get("seed_trial_seconds", ()))})


def final_epochs(seconds_left: float, times: StepTimes, work: Workload, depth: int,
                 configured_epochs: int, head_epochs: int = 0) -> int:
    """Final training epochs of the chosen configuration that fit in `seconds_left`: at
    least 1, at most FINAL_EPOCH_FACTOR x --epochs."""
    return _epochs_within(seconds_left, times, work, depth, head_epochs,
                          FINAL_EPOCH_FACTOR * configured_epochs)
