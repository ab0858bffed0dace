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


def test_a_second_seed_is_trained_whenever_a_trial_beats_the_start():
    assert not selection.needs_second_seed(0.80, 0.80)     # the start is the best
    assert selection.needs_second_seed(0.82, 0.80)
    assert selection.needs_second_seed(0.95, 0.80)
