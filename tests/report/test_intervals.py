"""The model card's intervals: Wilson's against scipy; the macro-F1 bootstrap's width."""
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics

from tftransfer.report import intervals


@pytest.mark.parametrize("successes, n", [(81, 100), (0, 10), (10, 10), (437, 500), (1, 3)])
def test_wilson_interval_matches_scipy(successes, n):
    expected = stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")
    low, high = intervals.wilson(successes, n)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


def _labels_and_predictions(n, seed=0, right=0.7):
    """Three classes; a share `right` of the predictions is the label, the rest random."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    predictions = np.where(rng.random(n) < right, labels, rng.integers(0, 3, n))
    return labels, predictions


def test_macro_f1_interval_brackets_the_score_and_narrows_with_more_images():
    small, large = (sk_metrics.confusion_matrix(*_labels_and_predictions(n), labels=[0, 1, 2])
                    for n in (60, 6000))
    score = sk_metrics.f1_score(*_labels_and_predictions(60), average="macro")
    assert intervals.macro_f1_of(small) == pytest.approx(score)
    assert intervals.macro_f1_of(np.array([[2, 0, 0], [1, 0, 0], [0, 0, 0]])) == pytest.approx(
        (0.8 + 0 + 0) / 3)   # a class never seen nor predicted scores 0
    low, high = intervals.macro_f1(small)
    assert low < score < high
    large_low, large_high = intervals.macro_f1(large)
    assert large_low < intervals.macro_f1_of(large) < large_high
    assert (large_high - large_low) < (high - low) / 5  # ~ 1/sqrt(100) as wide
    assert intervals.macro_f1(small) == (low, high)  # seeded
    assert intervals.macro_f1(np.diag([5, 7, 9])) == (1.0, 1.0)
