"""The plan of a budgeted run, from given step times."""
import pytest

from tftransfer.config import budget as budget_lib, budget_plan as plan_lib
from tftransfer.config.budget import StepTimes, Workload

TIMES = StepTimes(forward=0.05, head=0.001, train={0: 0.1, 4: 0.2, 8: 0.3, -1: 0.5}, setup=5.0)
WORK = Workload(train=6400, validation=640, test=640, batch_size=64)   # 100 train batches


def test_a_roomy_budget_secures_the_starting_point_and_searches_with_the_rest():
    plan = plan_lib.plan_run(1200, 60, TIMES, WORK, start_depth=4, start_epochs=5,
                               depths=(0, 4, 8, -1), cache_frozen=True)
    # Thrice --epochs fit in half the time left, so all of them are secured.
    start_training = 5 + 15 * budget_lib.epoch_seconds(TIMES, WORK, 4)
    assert plan.final == pytest.approx(start_training) and plan.start_epochs == 15
    assert plan.reserve == pytest.approx(budget_lib.EXPORT_SECONDS + 1.0)
    assert plan.search == pytest.approx((1200 - 60) * 0.95 - plan.reserve - plan.final)
    assert plan.search_fraction == 1.0 and plan.trials >= plan_lib.TARGET_TRIALS
    assert plan.trials * plan.trial_seconds <= plan.search
    assert plan.spent + plan.reserve + plan.final + plan.search <= 1200


def test_a_tighter_budget_searches_on_a_subset_first():
    plan = plan_lib.plan_run(400, 30, TIMES, WORK, start_depth=0, start_epochs=5,
                               depths=(0, 4, 8, -1), cache_frozen=False)
    assert plan.search_fraction < 1.0
    assert WORK.train * plan.search_fraction >= plan_lib.MIN_TRIAL_EXAMPLES
    assert plan.trials >= plan_lib.MIN_TRIALS


def test_the_final_training_is_secured_up_to_thrice_its_epochs_within_half_the_time():
    def plan(budget):
        return plan_lib.plan_run(budget, 30, TIMES, WORK, start_depth=4, start_epochs=5,
                                   depths=(0, 4), cache_frozen=True)
    epoch = budget_lib.epoch_seconds(TIMES, WORK, 4)
    middle = plan(600)
    available = (600 - 30) * (1 - plan_lib.SAFETY) - middle.reserve
    assert 5 < middle.start_epochs < 15 and middle.trials >= plan_lib.MIN_TRIALS
    assert middle.final <= plan_lib.START_SHARE * available < middle.final + epoch
    # Never less than --epochs, even beyond half the time.
    tight = plan(260)
    available = (260 - 30) * (1 - plan_lib.SAFETY) - tight.reserve
    assert tight.start_epochs == 5 and tight.final > plan_lib.START_SHARE * available


def test_a_budget_too_small_for_trials_trains_the_start_without_searching():
    plan = plan_lib.plan_run(200, 30, TIMES, WORK, start_depth=8, start_epochs=5,
                               depths=(0, 4, 8, -1), cache_frozen=False)
    assert plan.trials == 0 and plan.search == 0 and "fewer than" in plan.why
    assert 1 <= plan.start_epochs <= 5


def test_a_budget_below_one_epoch_names_the_smallest_that_fits():
    with pytest.raises(plan_lib.BudgetTooSmall, match=r"smallest budget that fits is about "
                                                        r"(\d+)s") as raised:
        plan_lib.plan_run(40, 30, TIMES, WORK, start_depth=0, start_epochs=5, depths=None,
                            cache_frozen=False)
    needed = float(raised.value.args[0].rsplit("about ", 1)[1].rstrip("s"))
    # That budget does hold one epoch.
    plan_lib.plan_run(needed, 30, TIMES, WORK, start_depth=0, start_epochs=5, depths=None,
                        cache_frozen=False)


def test_final_epochs_fill_the_time_left_within_ten_times_the_configured_epochs():
    epoch = budget_lib.epoch_seconds(TIMES, WORK, -1)
    assert plan_lib.final_epochs(5 + 3.5 * epoch, TIMES, WORK, -1, 5) == 3
    assert plan_lib.final_epochs(5 + 20.5 * epoch, TIMES, WORK, -1, 5) == 20
    assert plan_lib.final_epochs(1e6, TIMES, WORK, -1, 5) == 50
    assert plan_lib.final_epochs(1.0, TIMES, WORK, -1, 5) == 1


def test_step_times_and_plans_survive_a_round_trip_through_json():
    import json
    saved = json.loads(json.dumps(budget_lib.times_to_dict(TIMES)))
    assert budget_lib.times_from_dict(saved) == TIMES
    plan = plan_lib.plan_run(1200, 60, TIMES, WORK, 4, 5, (0, 4), True)
    again = plan_lib.plan_from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.trials == plan.trials and again.search == pytest.approx(plan.search, abs=0.1)


def test_a_budget_that_cannot_afford_deep_trials_searches_the_depths_it_can():
    dear = StepTimes(forward=0.05, head=0.001, train={0: 0.1, 4: 0.2, 8: 2.0, -1: 4.0},
                     setup=5.0)
    plan = plan_lib.plan_run(400, 30, dear, WORK, start_depth=4, start_epochs=3,
                               depths=(0, 4, 8, -1), cache_frozen=True)
    assert plan.trials >= plan_lib.MIN_TRIALS and plan.depths == (0, 4, 8)
    assert "without the depths [-1]" in plan.why
    restored = plan_lib.plan_from_dict(plan.to_dict())
    assert restored.depths == (0, 4, 8)
    assert restored.search_fraction == pytest.approx(plan.search_fraction, abs=1e-4)


def test_head_epochs_are_charged_as_frozen_ones():
    head, deep = (budget_lib.epoch_seconds(TIMES, WORK, d) for d in (0, -1))
    # Two phases: each builds and traces (5 s).
    assert budget_lib.final_seconds(TIMES, WORK, -1, 4, 1) == pytest.approx(10 + head + 3 * deep)
    assert budget_lib.final_seconds(TIMES, WORK, -1, 1, 1) == pytest.approx(5 + deep)  # never all
    assert budget_lib.trial_seconds(TIMES, WORK, -1, 1.0, cached=True) == \
        pytest.approx(10 + head + deep)
    plan = plan_lib.plan_run(10 + head + 3 * deep + 40, 0, TIMES, WORK, start_depth=-1,
                               start_epochs=4, depths=None, cache_frozen=False,
                               start_head_epochs=1)
    assert plan.start_epochs == 4


def test_cheap_resolutions_buy_more_trials():
    scale = {224: 1.0, 32: 0.05, 64: 0.1, 128: 0.4}
    times = StepTimes(**{**TIMES.__dict__, "scale": scale})
    args = (600, 30, times, WORK, 4, 3, (0, 4, 8, -1), False)
    one = plan_lib.plan_run(*args)
    searched = plan_lib.plan_run(*args, sizes=(224, 32, 64, 128))
    assert searched.final == one.final    # the start is secured at its own size
    assert searched.trial_seconds < one.trial_seconds
    assert searched.trials > one.trials or searched.search_fraction > one.search_fraction


def test_the_start_trains_at_the_largest_size_whose_epochs_fit_half_the_time_left():
    times = StepTimes(**{**TIMES.__dict__, "scale": {224: 1.0, 32: 0.05, 64: 0.1, 128: 0.4}})
    sizes = (224, 32, 64, 128)
    roomy = plan_lib.plan_run(3600, 30, times, WORK, 4, 3, (0, 4), False, sizes=sizes)
    assert roomy.image_size == 224
    tight = plan_lib.plan_run(150, 30, times, WORK, 4, 3, (0, 4), False, sizes=sizes)
    assert tight.trials and tight.image_size in (32, 64, 128) and tight.start_epochs >= 3
    available = (150 - 30) * (1 - plan_lib.SAFETY) - tight.reserve
    assert tight.final <= plan_lib.START_SHARE * available
    # Without a search the start may take all of the time: a larger size.
    alone = plan_lib.plan_run(150, 30, times, WORK, 4, 3, None, False, sizes=sizes)
    assert alone.trials == 0 and alone.image_size > tight.image_size
    assert plan_lib.start_image_size(1.0, times, WORK, 4, 3, 0, sizes) == 32  # none fits
    assert plan_lib.plan_run(3600, 30, times, WORK, 4, 3, (0, 4), False).image_size is None


def test_evaluation_and_export_are_reserved_at_the_starting_points_size():
    times = StepTimes(**{**TIMES.__dict__, "scale": {224: 1.0, 32: 0.05, 64: 0.1, 128: 0.4}})
    tight = plan_lib.plan_run(150, 30, times, WORK, 4, 3, (0, 4), False,
                              sizes=(224, 32, 64, 128))
    assert tight.image_size < 224
    assert tight.reserve == pytest.approx(budget_lib.reserve_seconds(
        budget_lib.at_size(times, tight.image_size), WORK))
    assert tight.reserve < budget_lib.reserve_seconds(times, WORK)


def test_trials_on_small_data_take_enough_epochs_for_a_hundred_steps():
    small = Workload(train=400, validation=100, test=100, batch_size=32)   # 13 batches
    assert budget_lib.trial_epochs(small, 1.0) == 8
    assert budget_lib.trial_epochs(Workload(40, 10, 10, 32), 1.0) == budget_lib.MAX_TRIAL_EPOCHS
    assert budget_lib.trial_epochs(WORK, 1.0) == budget_lib.TRIAL_EPOCHS   # 100 batches
    plan = plan_lib.plan_run(600, 30, TIMES, small, start_depth=0, start_epochs=5,
                               depths=(0, 4), cache_frozen=False)
    assert plan.trial_epochs == 8 and plan.trials >= plan_lib.MIN_TRIALS
    assert plan.trial_seconds == pytest.approx(sum(
        budget_lib.training_seconds(TIMES, small, d, 8, 1) for d in (0, 4)) / 2)
    # A seed point's trial trains for SEED_TRIAL_STEPS.
    assert budget_lib.trial_epochs(small, 1.0, seed=True) == 20   # 300 / 13, at most 20
    assert budget_lib.trial_epochs(Workload(1079, 0, 0, 32), 1.0, seed=True) == 9
    assert budget_lib.trial_epochs(Workload(40, 10, 10, 32), 1.0, seed=True) == (
        budget_lib.MAX_SEED_TRIAL_EPOCHS)
    assert budget_lib.trial_epochs(Workload(32_000, 0, 0, 32), 1.0, seed=True) == 2
    # A subset is never so small that its TRIAL_EPOCHS are fewer than MIN_TRIAL_STEPS.
    tight = plan_lib.plan_run(400, 30, TIMES, WORK, start_depth=0, start_epochs=5,
                                depths=(0, 4, 8, -1), cache_frozen=False)
    assert tight.search_fraction == 0.5 and tight.trial_epochs == budget_lib.TRIAL_EPOCHS


def test_the_starting_points_trial_is_costed_on_its_own():
    # Cached frozen trials cost little; an augmented start cannot use the cache.
    def plan(budget, augmented):
        return plan_lib.plan_run(budget, 30, TIMES, WORK, start_depth=0, start_epochs=5,
                                 depths=(0,), cache_frozen=True, start_augmented=augmented)
    assert plan(130, augmented=False).trials >= plan_lib.MIN_TRIALS
    assert plan(130, augmented=True).trials == 0    # its trial alone overruns the search
    roomy = plan(300, augmented=True)
    start = budget_lib.trial_seconds(TIMES, WORK, 0, roomy.search_fraction, cached=False)
    assert start + (roomy.trials - 1) * roomy.trial_seconds <= roomy.search


def test_a_seed_point_makes_a_search_of_two_trials_worth_its_time():
    def plan(budget, seeds):
        return plan_lib.plan_run(budget, 30, TIMES, WORK, start_depth=0, start_epochs=5,
                                 depths=(0,), cache_frozen=False, seeds=seeds)
    budget = next(b for b in range(100, 900, 5) if plan(b, ((None, 0),)).seed_trial_seconds)
    seeded = plan(budget, ((None, 0),))
    assert seeded.trials == plan_lib.MIN_SEEDED_TRIALS < plan_lib.MIN_TRIALS
    firsts = seeded.start_trial_seconds + seeded.seed_trial_seconds[0]
    assert firsts <= seeded.search < firsts + seeded.trial_seconds
    # The seed's trial trains longer than the start's (budget.SEED_TRIAL_STEPS).
    assert seeded.seed_trial_seconds[0] > seeded.start_trial_seconds


def test_two_uncached_first_trials_are_not_charged_the_features_other_trials_need():
    # An augmented start and a fine-tuned seed extract no features: at 4 sizes extracting
    # them all would cost more than both trials.
    times = StepTimes(forward=0.3, head=0.001, train={0: 0.1, -1: 0.3}, setup=5.0,
                      scale={224: 1.0, 32: 0.1, 64: 0.2, 128: 0.4})
    sizes = (224, 32, 64, 128)

    def plan(budget):
        return plan_lib.plan_run(budget, 30, times, WORK, start_depth=0, start_epochs=5,
                                 depths=(0, -1), cache_frozen=True, sizes=sizes,
                                 start_augmented=True, seeds=((32, -1),))
    seeded = next(p for p in map(plan, range(100, 900, 2)) if p.trials)
    extraction = sum(budget_lib.extraction_seconds(budget_lib.at_size(times, s), WORK,
                                                   seeded.search_fraction) for s in sizes)
    firsts = seeded.start_trial_seconds + sum(seeded.seed_trial_seconds)
    assert seeded.trials == plan_lib.MIN_SEEDED_TRIALS
    assert firsts <= seeded.search < firsts + extraction / 2


def test_the_seed_points_depth_is_kept_when_dearer_ones_are_dropped():
    # Full fine-tuning (the dearest depth) at a seed point, besides a frozen start.
    def plan(budget, seeds):
        return plan_lib.plan_run(budget, 30, TIMES, WORK, start_depth=0, start_epochs=5,
                                 depths=(0, 4, 8, -1), cache_frozen=False, seeds=seeds)
    budgets = range(150, 600, 25)
    searched = [plan(b, ((None, -1),)) for b in budgets
                if plan(b, ((None, -1),)).seed_trial_seconds]
    assert searched and all(-1 in p.depths for p in searched)
    assert any(plan(b, ()).trials and -1 not in plan(b, ()).depths for b in budgets)
    for p in searched:
        firsts = (budget_lib.trial_seconds(TIMES, WORK, 0, p.search_fraction, False)
                  + budget_lib.trial_seconds(TIMES, WORK, -1, p.search_fraction, False,
                                             seed=True))
        assert p.seed_trial_seconds == (pytest.approx(firsts - p.start_trial_seconds),)
        assert firsts + (p.trials - 2) * p.trial_seconds <= p.search


def test_a_seed_too_dear_for_the_budget_leaves_an_unseeded_search():
    small = Workload(train=400, validation=100, test=100, batch_size=32)  # 20-epoch seeds

    def plan(budget, seeds):
        return plan_lib.plan_run(budget, 30, TIMES, small, start_depth=0, start_epochs=5,
                                 depths=(0, 4, 8, -1), cache_frozen=True, seeds=seeds)
    budgets = range(60, 400, 10)
    unseeded = [b for b in budgets if plan(b, ()).trials]
    assert unseeded
    for b in unseeded:      # a seed never takes away a search the budget holds without it
        assert plan(b, ((None, -1),)).trials >= plan_lib.MIN_TRIALS or (
            plan(b, ((None, -1),)).seed_trial_seconds)
    fallback = [plan(b, ((None, -1),)) for b in unseeded
                if not plan(b, ((None, -1),)).seed_trial_seconds]
    assert fallback and all(p.trials >= plan_lib.MIN_TRIALS for p in fallback)
