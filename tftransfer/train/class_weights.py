"""Loss weights per class from the training split's class counts (pure, no TensorFlow).

`balanced` weighs each example of class c by n / (C * n_c), so every class present weighs
as much in the loss as an equal share of the data would (scikit-learn's "balanced"). A
class absent from training gets 1.0: it has no examples to weigh.
"""
from __future__ import annotations

from typing import Sequence

# Training splits whose largest class has at least this many times the examples of the
# smallest let the search try balanced weights too.
IMBALANCED = 3.0


def of(mode: str, counts: Sequence[int]) -> dict[int, float] | None:
    """Keras's `class_weight` for `mode` ("none": None) and per-class `counts`."""
    if mode == "none":
        return None
    present = [c for c in counts if c > 0]
    total, classes = sum(present), len(present)
    return {label: total / (classes * count) if count > 0 else 1.0
            for label, count in enumerate(counts)}


def imbalance(counts: Sequence[int]) -> float:
    """The largest class's count over the smallest present one's (1.0 for no data)."""
    present = [c for c in counts if c > 0]
    return max(present) / min(present) if present else 1.0
