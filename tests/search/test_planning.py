"""A budgeted run's final training is sized by the time left and by what trials really took."""
import pytest
from conftest import make_config

from tftransfer.config import budget as budget_lib, budget_plan as plan_lib
from tftransfer.outputs.ledger import Ledger
from tftransfer.search import planning

TIMES = budget_lib.StepTimes(forward=0.05, head=0.001, train={0: 0.1, 2: 0.2, -1: 0.5},
                             setup=5.0)
WORK = budget_lib.Workload(train=6400, validation=640, test=640, batch_size=64)


def _run(folder):
    folder.mkdir(exist_ok=True)
    plan = plan_lib.plan_run(1200, 0, TIMES, WORK, start_depth=2, start_epochs=4,
                               depths=(0, 2, -1), cache_frozen=False, start_head_epochs=1)
    ledger = Ledger(str(folder), 200, clock=lambda: 1000.0)  # 200 s left after the search
    return planning.BudgetedRun(None, ledger, plan, TIMES, WORK, True, False, None, None), plan


def _trial(depth, seconds, seed=False):
    return {"status": "COMPLETED", "seconds": seconds, "seed": seed,
            "hyperparameters": {"fine_tune_depth": depth, "augment": 0}}


def test_trials_slower_than_estimated_scale_the_final_training_down(tmp_path, tiny_hub_dir,
                                                                   color_folder):
    run, plan = _run(tmp_path)
    estimate = budget_lib.trial_seconds(TIMES, WORK, 2, plan.search_fraction, False)
    assert planning._slowdown(run, [_trial(2, 2 * estimate)]) == pytest.approx(2.0)
    assert planning._slowdown(run, []) == 1.0
    assert planning._slowdown(run, [_trial(2, 100 * estimate)]) == plan_lib.MAX_SLOWDOWN
    # A seed point's trial trains longer (budget.SEED_TRIAL_STEPS) and is estimated so.
    seed = budget_lib.trial_seconds(TIMES, WORK, -1, plan.search_fraction, False, seed=True)
    assert seed > budget_lib.trial_seconds(TIMES, WORK, -1, plan.search_fraction, False)
    assert planning._slowdown(run, [_trial(-1, seed, seed=True)]) == pytest.approx(1.0)
    cfg = make_config(tmp_path / "o", dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=2, epochs=6, head_epochs=1)
    as_estimated = planning.final_config(run, cfg, [_trial(2, estimate)]).train.epochs
    run, _ = _run(tmp_path / "again")
    slower = planning.final_config(run, cfg, [_trial(2, 2.5 * estimate)]).train.epochs
    assert 1 <= slower < as_estimated
    # Sized to the time, the final training runs its epochs (the best one is restored).
    assert cfg.train.early_stopping_patience > 0
    assert planning.final_config(run, cfg).train.early_stopping_patience == 0
    assert run.ledger.notes["slowdown"] == pytest.approx(2.5)
