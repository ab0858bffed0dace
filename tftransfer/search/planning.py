"""A budgeted run's plan in practice: measure, plan, configure the search, size the final
training, and account for each stage (config/budget.py holds the arithmetic).

The first attempt's step times and plan are kept in the ledger (budget.json), so a run
resumed after a kill follows the same plan, with the time already spent charged.
"""
from __future__ import annotations

import dataclasses
import time

from absl import logging

from tftransfer.config import budget as budget_lib, budget_plan as plan_lib, cluster
from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib
from tftransfer.outputs.ledger import Ledger
from tftransfer.search import inputs as inputs_lib, space as search_space, step_times, tuning
from tftransfer.train.callbacks import Deadline


@dataclasses.dataclass(frozen=True)
class BudgetedRun:
    cfg: object                   # the run's config at the plan's starting resolution
    ledger: Ledger
    plan: plan_lib.Plan
    times: budget_lib.StepTimes
    work: budget_lib.Workload
    searching: bool
    cache_frozen: bool            # frozen trials may train on cached features
    search_cfg: object            # the config the search runs with
    search_budget: tuning.SearchBudget | None


def _workload(cfg, data: data_lib.DataBundle) -> budget_lib.Workload:
    return budget_lib.Workload(data.sizes["train"], data.sizes.get("validation", 0),
                               data.sizes.get("test", 0), cfg.data.batch_size)


@dataclasses.dataclass(frozen=True)
class _Searched:
    """What of the search space the plan costs."""
    depths: tuple[int, ...] | None = None   # the fine-tune depths trials may pick
    sizes: tuple[int, ...] = ()             # the resolutions, when searched
    cache_frozen: bool = False              # frozen trials may train on cached features
    seeds: tuple[tuple[int | None, int], ...] = ()   # (resolution, depth) of each seed point


def _searched(cfg, data) -> _Searched:
    backbone, _ = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
    _, space = tuning.make_space(cfg, data.sizes["train"], backbone.num_blocks,
                                 inputs_lib.image_sizes(data), data.class_counts["train"])
    sizes = space.get("image_size")
    seeds = tuple((p.get("image_size"), p.get("fine_tune_depth", cfg.backbone.fine_tune_depth))
                  for p in tuning.seed_points(space, data.own_size))
    return _Searched(tuple(search_space.values_of(space["fine_tune_depth"])),
                     tuple(sizes.values) if isinstance(sizes, search_space.Choice) else (),
                     inputs_lib.may_use_cache(space), seeds)


def _measured(cfg, data, strategy, ledger: Ledger, depths, sizes) -> budget_lib.StepTimes:
    if "step_times" in ledger.notes:
        return budget_lib.times_from_dict(ledger.notes["step_times"])
    times = step_times.measure(cfg, data, depths, strategy, sizes,
                               deepest_too=ledger.budget >= step_times.MEASURE_DEEPEST_BUDGET)
    ledger.note("step_times", budget_lib.times_to_dict(times))
    return times


def _search_config(cfg, plan: plan_lib.Plan):
    """Trial fidelity and count from the plan; a distributed search keeps its flags' (its
    tuner workers must agree, and only the chief plans), and Hyperband its own epochs."""
    if cluster.is_search_chief() or cfg.search.search == "hyperband":
        return cfg
    search = dataclasses.replace(
        cfg.search, search_epochs=plan.trial_epochs, search_fraction=plan.search_fraction,
        max_trials=min(plan_lib.MAX_TRIALS, 2 * plan.trials))  # the deadline stops it
    return dataclasses.replace(cfg, search=search)


def plan(cfg, data, strategy, ledger: Ledger) -> BudgetedRun:
    """Measures (or recalls) the step times and plans what is left of the budget."""
    searching = cfg.search.search != "none"
    searched = _searched(cfg, data) if searching else _Searched()
    depths, cache_frozen = searched.depths, searched.cache_frozen
    times = _measured(cfg, data, strategy, ledger,
                      (depths or ()) + (cfg.backbone.fine_tune_depth,), searched.sizes)
    work = _workload(cfg, data)
    ledger.end_stage("start-up")
    if "plan" in ledger.notes:
        the_plan = plan_lib.plan_from_dict(ledger.notes["plan"])
    else:
        the_plan = plan_lib.plan_run(ledger.budget, ledger.spent(), times, work,
                                       cfg.backbone.fine_tune_depth, cfg.train.epochs,
                                       depths, cache_frozen, cfg.train.head_epochs,
                                       searched.sizes, start_augmented=cfg.data.augment,
                                       seeds=searched.seeds)
        ledger.note("plan", the_plan.to_dict())
    logging.info("Time budget %s: %s", budget_lib.format_duration(ledger.budget),
                 describe(the_plan))
    if the_plan.image_size not in (None, cfg.data.image_size):
        logging.info("The starting point trains at %d px, not %d: the budget holds its "
                     "epochs there", the_plan.image_size, cfg.data.image_size)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, image_size=the_plan.image_size))
    searching = searching and the_plan.trials > 0
    search_budget = None
    if searching:
        # The search's share runs from the plan's start; a resumed attempt has less left.
        deadline = ledger.deadline() - ledger.budget + the_plan.spent + the_plan.search
        search_budget = tuning.SearchBudget(deadline, the_plan.trial_seconds, the_plan.depths,
                                            the_plan.final, the_plan.start_trial_seconds,
                                            the_plan.seed_trial_seconds)
    return BudgetedRun(cfg, ledger, the_plan, times, work, searching, cache_frozen,
                       _search_config(cfg, the_plan) if searching else cfg, search_budget)


def describe(plan: plan_lib.Plan) -> str:
    search = (f"search {plan.search:.0f} s for about {plan.trials} trials of "
              f"{plan.trial_epochs} epochs on {plan.search_fraction:.0%} of train"
              if plan.trials else f"no search ({plan.why})")
    size = f" at {plan.image_size} px" if plan.image_size else ""
    return (f"{plan.spent:.0f} s spent; {search}; final training {plan.final:.0f} s "
            f"({plan.start_epochs} epochs of the starting point{size}); evaluation and "
            f"export {plan.reserve:.0f} s")


def _slowdown(run: BudgetedRun, trials: list[dict]) -> float:
    """How much longer the search's trials took than estimated from the step times (1.0
    without trials), within [MIN_SLOWDOWN, MAX_SLOWDOWN]: the final training's epochs are
    sized with it, as steps measured in isolation miss what a real fit adds."""
    def estimate(trial: dict) -> float:
        values = trial["hyperparameters"]
        # A seed point's trial is estimated at its own length: at a plain trial's, a
        # 5-minute run's seed looked 2x slow and its final training was sized to half of
        # the time it was left.
        return budget_lib.trial_seconds(
            budget_lib.at_size(run.times, values.get("image_size")), run.work,
            int(values.get("fine_tune_depth", 0)), run.plan.search_fraction,
            run.cache_frozen and not values.get("augment"), trial.get("seed", False))
    pairs = [(t["seconds"], estimate(t))
             for t in trials if t.get("seconds") and t["status"] == "COMPLETED"]
    if not pairs:
        return 1.0
    ratio = sum(actual for actual, _ in pairs) / sum(estimate for _, estimate in pairs)
    return min(max(ratio, plan_lib.MIN_SLOWDOWN), plan_lib.MAX_SLOWDOWN)


def _times_of(run: BudgetedRun, cfg) -> budget_lib.StepTimes:
    """The step times at `cfg`'s resolution (a searched one may differ from the run's)."""
    return budget_lib.at_size(run.times, cfg.data.image_size)


def final_config(run: BudgetedRun, cfg, trials: list[dict] | None = None):
    """`cfg` with the final training's epochs sized to the time left, the estimates
    scaled by what the search's `trials` took against theirs."""
    left = run.ledger.left() * (1 - plan_lib.SAFETY) - _reserve(run, cfg)
    if "final_epochs" in run.ledger.notes:
        epochs = run.ledger.notes["final_epochs"]
    else:
        slowdown = _slowdown(run, trials or [])
        epochs = plan_lib.final_epochs(left / slowdown, _times_of(run, cfg), run.work,
                                         cfg.backbone.fine_tune_depth, cfg.train.epochs,
                                         cfg.train.head_epochs)
        logging.info("The search's trials took %.2fx their estimate; the final training "
                     "is sized with that", slowdown)
        run.ledger.note("final_epochs", epochs)
        run.ledger.note("slowdown", round(slowdown, 3))
    head_epochs = min(cfg.train.head_epochs, max(epochs - 1, 0))
    logging.info("Final training: %d epochs (%d head) in the %.0f s left before "
                 "evaluation and export, without early stopping", epochs, head_epochs, left)
    # The epochs are sized to the time and the schedule to the epochs: early stopping cut
    # 3-minute folder runs at 9 of 11 and 11 of 17 epochs, before the learning rate had
    # annealed, and left a fifth of the budget unused. The best epoch is restored anyway.
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, epochs=epochs, head_epochs=head_epochs, early_stopping_patience=0))


def _reserve(run: BudgetedRun, cfg) -> float:
    """Evaluation and export at `cfg`'s resolution (the plan reserved them at the starting
    point's, which the search may have changed)."""
    return budget_lib.reserve_seconds(_times_of(run, cfg), run.work)


def training_deadline(run: BudgetedRun, final_cfg) -> Deadline:
    """When the final training must stop to leave evaluation and export their time; a
    fit's first epoch counts without the tracing of its phase (the deeper one's, as a
    head phase's first epoch still counts a quarter)."""
    return Deadline(time.time() + run.ledger.left() - _reserve(run, final_cfg),
                              run.times.setup_at(final_cfg.backbone.fine_tune_depth))


def block(run: BudgetedRun, final_cfg) -> dict:
    """metrics.json's `budget` block: the plan, and estimated against actual seconds."""
    final = budget_lib.final_seconds(_times_of(run, final_cfg), run.work,
                                     final_cfg.backbone.fine_tune_depth,
                                     final_cfg.train.epochs, final_cfg.train.head_epochs)
    estimated = {"start-up": run.plan.spent, "search": run.plan.search,
                 "final training": final, "evaluation and export": _reserve(run, final_cfg)}
    return {"budget_seconds": run.ledger.budget, "spent_seconds": round(run.ledger.spent(), 1),
            "attempts": run.ledger.attempts, "plan": run.plan.to_dict(),
            "final_epochs": final_cfg.train.epochs,
            "slowdown": run.ledger.notes.get("slowdown", 1.0),
            "step_times": budget_lib.times_to_dict(run.times),
            "stages": {name: {"estimated": round(estimated.get(name, 0.0), 1),
                              "actual": round(run.ledger.stages.get(name, 0.0), 1)}
                       for name in (*estimated, *run.ledger.stages)}}
