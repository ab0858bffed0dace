"""Loss weights per class from the training split's counts."""
import pytest

from tftransfer.train import class_weights


def test_balanced_weights_give_every_present_class_an_equal_share():
    weights = class_weights.of("balanced", [30, 10, 5, 0])
    assert weights == pytest.approx({0: 0.5, 1: 1.5, 2: 3.0, 3: 1.0})
    counts = [30, 10, 5]
    assert sum(weights[c] * n for c, n in enumerate(counts)) == pytest.approx(sum(counts))
    assert all(weights[c] * n == pytest.approx(15.0) for c, n in enumerate(counts))
    assert class_weights.of("none", counts) is None
    assert class_weights.of("balanced", [7, 7]) == {0: 1.0, 1: 1.0}


def test_imbalance_is_the_largest_class_over_the_smallest_present():
    assert class_weights.imbalance([30, 10, 5, 0]) == 6.0
    assert class_weights.imbalance([4, 4]) == 1.0
    assert class_weights.imbalance([]) == 1.0
