"""95 % intervals of the model card's metrics: Wilson's for a proportion (accuracy), a
percentile bootstrap for macro-F1. Pure numpy."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Z_95 = 1.959963984540054        # the standard normal's 97.5th percentile
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) without trials."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def macro_f1_of(confusions: np.ndarray) -> np.ndarray:
    """Macro-F1 of confusion matrices [..., C, C] (rows true), averaged over all C classes,
    a class with no true and no predicted example scoring 0 (metrics.py's convention)."""
    hits = np.diagonal(confusions, axis1=-2, axis2=-1)
    total = confusions.sum(axis=-1) + confusions.sum(axis=-2)
    f1 = np.divide(2 * hits, total, out=np.zeros(hits.shape), where=total > 0)
    return f1.mean(axis=-1)


def macro_f1(confusion: Sequence[Sequence[int]], draws: int = BOOTSTRAP_DRAWS,
             seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """A percentile-bootstrap 95 % interval of macro-F1: the evaluation set is resampled
    with replacement, which amounts to a multinomial draw over the confusion matrix's
    cells, so no per-example predictions are needed."""
    counts = np.asarray(confusion, dtype=np.int64)
    n = int(counts.sum())
    cells = np.random.default_rng(seed).multinomial(n, counts.ravel() / n, size=draws)
    scores = macro_f1_of(cells.reshape((draws,) + counts.shape))
    return float(np.percentile(scores, 2.5)), float(np.percentile(scores, 97.5))
