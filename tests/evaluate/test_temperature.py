"""Temperature scaling's fit on synthetic predictions whose miscalibration is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from tftransfer.evaluate import metrics as classification_metrics, temperature


def _synthetic(true_temperature: float, n: int = 20000, classes: int = 5, seed: int = 0):
    """Labels drawn from softmax(logits); the model reports softmax(logits / T_true), so
    T_true < 1 makes it over-confident and dividing by 1 / T_true calibrates it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, classes))
    truth = special.softmax(logits, axis=1)
    labels = (rng.random((n, 1)) > truth.cumsum(axis=1)).sum(axis=1)
    return labels, special.softmax(logits / true_temperature, axis=1).astype(np.float32)


@pytest.mark.parametrize("reported_temperature", [0.4, 2.0])
def test_the_fit_recovers_a_known_temperature(reported_temperature):
    labels, probabilities = _synthetic(reported_temperature)
    fitted = temperature.fit_temperature(labels, probabilities)
    assert fitted == pytest.approx(1 / reported_temperature, rel=0.05)


def test_calibrated_data_keeps_a_temperature_near_one():
    labels, probabilities = _synthetic(1.0)
    assert temperature.fit_temperature(labels, probabilities) == pytest.approx(1.0, abs=0.04)


def test_scaling_lowers_ece_and_nll_and_keeps_every_argmax():
    labels, probabilities = _synthetic(0.4)
    fitted = temperature.fit_temperature(labels, probabilities)
    scaled = temperature.apply_temperature(probabilities, fitted)
    np.testing.assert_array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0, rtol=1e-9)
    before = classification_metrics.compute(labels, probabilities, list("abcde"))
    after = classification_metrics.compute(labels, scaled, list("abcde"))
    assert before["expected_calibration_error"] > 0.1
    assert after["expected_calibration_error"] < 0.02
    assert after["loss"] < before["loss"]
    assert after["accuracy"] == before["accuracy"]
    assert temperature.negative_log_likelihood(labels, probabilities, fitted) == pytest.approx(
        temperature.negative_log_likelihood(labels, scaled), rel=1e-6)


def test_the_nll_is_the_mean_negative_log_of_the_true_class():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    expected = -(np.log(0.7) + np.log(0.5)) / 2
    assert temperature.negative_log_likelihood([0, 2], probabilities) == pytest.approx(expected)


def test_zero_probabilities_and_one_hot_rows_are_fitted_within_bounds():
    """A float32 softmax underflows to 0: its log is clipped, never -inf."""
    labels = np.array([0, 1, 2, 0])
    fitted = temperature.fit_temperature(labels, np.eye(3, dtype=np.float32)[labels])
    assert temperature.BOUNDS[0] <= fitted <= temperature.BOUNDS[1]
    assert np.isfinite(temperature.apply_temperature(np.eye(3)[labels], fitted)).all()


def test_a_model_always_right_wants_the_sharpest_temperature_allowed():
    labels = np.array([0, 1, 2, 0])
    probabilities = np.full((4, 3), 0.2) + 0.4 * np.eye(3)[labels]
    fitted = temperature.fit_temperature(labels, probabilities)
    assert fitted == pytest.approx(temperature.BOUNDS[0], rel=0.01)
    assert temperature.at_bound(fitted) and not temperature.at_bound(1.0)


@pytest.mark.parametrize("labels, probabilities, message", [
    ([0, 1], [0.2, 0.8], r"\[N, C\]"),
    ([0], [[1.0]], r"C >= 2"),
    ([0, 1, 1], [[0.2, 0.8], [0.6, 0.4]], "one label per"),
    ([], np.zeros((0, 2)), "one label per"),
    ([0.0, 1.0], [[0.2, 0.8], [0.6, 0.4]], "integers"),
    ([0, 2], [[0.2, 0.8], [0.6, 0.4]], r"\[0, 2\)"),
    ([0, 1], [[0.2, np.nan], [0.6, 0.4]], r"\[0, 1\]"),
    ([0, 1], [[-0.2, 1.2], [0.6, 0.4]], r"\[0, 1\]"),
])
def test_bad_inputs_raise_one_line_value_errors(labels, probabilities, message):
    with pytest.raises(ValueError, match=message) as error:
        temperature.fit_temperature(labels, probabilities)
    assert "\n" not in str(error.value)
