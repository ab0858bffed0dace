"""Do no harm: the best trial replaces the starting point only beyond the measured noise."""
import pytest

from tftransfer.search import selection


def test_a_win_inside_the_validation_noise_keeps_the_start():
    se = selection.standard_error(0.80, 400)       # 0.02
    decision = selection.decide(0.80 + se * 0.9, (0.80, 0.80), 400)
    assert decision.keep_start and decision.noise == pytest.approx(se)
    assert "keeps the starting point" in decision.describe()


def test_with_one_seed_only_a_clear_win_replaces_the_start():
    se = selection.standard_error(0.80, 400)
    assert selection.decide(0.80 + 2.5 * se, (0.80,), 400).keep_start
    assert not selection.decide(0.80 + 3.5 * se, (0.80,), 400).keep_start


def test_a_win_beyond_the_noise_takes_the_best():
    decision = selection.decide(0.90, (0.80,), 400)
    assert not decision.keep_start and decision.to_dict()["kept"] == "best"
    assert decision.margin == pytest.approx(0.10)


def test_two_seeds_that_disagree_raise_the_bar():
    decision = selection.decide(0.86, (0.80, 0.88), 10_000)
    assert decision.noise == pytest.approx(0.08) and decision.keep_start


def test_a_second_seed_is_trained_only_when_it_could_change_the_decision():
    error = selection.standard_error(0.80, 1000)             # 0.0126
    assert not selection.needs_second_seed(0.80, 0.80, 1000)     # the start is the best
    assert not selection.needs_second_seed(0.80 + 0.4 * error, 0.80, 1000)
    assert selection.needs_second_seed(0.80 + 0.6 * error, 0.80, 1000)
    assert selection.needs_second_seed(0.95, 0.80, 1000)


@pytest.mark.parametrize("lead", [0.0, 0.2, 0.45])
def test_no_second_score_flips_a_lead_of_at_most_half_a_standard_error(lead):
    error = selection.standard_error(0.80, 1000)
    best = 0.80 + lead * error
    for second in (0.80 + k * error / 10 for k in range(-60, 61)):
        assert selection.decide(best, (0.80, second), 1000).keep_start
