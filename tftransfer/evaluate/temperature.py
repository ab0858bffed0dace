"""Temperature scaling (--calibrate): one scalar T > 0 that divides the logits before the
softmax, fitted by minimising the negative log-likelihood of held-out labels.

The trained model's probabilities are all it needs: log p is the logits minus a per-row
constant, so softmax(log p / T) = softmax(logits / T). Dividing by T keeps every row's
order of classes, hence its argmax and the accuracy. The NLL is convex in 1 / T, so a
bounded one-dimensional search (SciPy's Brent) over log T finds its minimum.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, special

BOUNDS = (0.05, 20.0)   # a fitted T outside this range means the model needs retraining
# float32 softmax outputs underflow to 0 below this; their log is clipped to it.
_SMALLEST = np.finfo(np.float32).tiny


def log_probabilities(probabilities) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _SMALLEST, 1.0))


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """softmax(log(probabilities) / temperature), row by row."""
    return special.softmax(log_probabilities(probabilities) / temperature, axis=1)


def negative_log_likelihood(labels, probabilities, temperature: float = 1.0) -> float:
    """Mean NLL of the true classes after dividing the logits by `temperature`."""
    labels, scaled = _validated(labels, probabilities)
    return _nll(scaled / temperature, labels)


def fit_temperature(labels, probabilities) -> float:
    """The T in BOUNDS minimising the mean NLL of `labels` [N] under `probabilities` [N, C]
    divided (as logits) by T. T > 1 softens over-confident predictions, T < 1 sharpens."""
    labels, log_p = _validated(labels, probabilities)
    found = optimize.minimize_scalar(lambda log_t: _nll(log_p / np.exp(log_t), labels),
                                     bounds=np.log(BOUNDS), method="bounded",
                                     options={"xatol": 1e-5})
    return float(np.exp(found.x))


def at_bound(temperature: float) -> bool:
    """Whether a fitted T sits (within 1 %) at an end of BOUNDS: the fit wanted further."""
    return not BOUNDS[0] * 1.01 < temperature < BOUNDS[1] / 1.01


def _nll(logits: np.ndarray, labels: np.ndarray) -> float:
    picked = logits[np.arange(len(labels)), labels]
    return float(np.mean(special.logsumexp(logits, axis=1) - picked))


def _validated(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be [N, C] with C >= 2, got shape "
                         f"{probabilities.shape}")
    if labels.shape != (probabilities.shape[0],) or len(labels) == 0:
        raise ValueError(f"need one label per probabilities row and at least one row, got "
                         f"shapes {labels.shape} and {probabilities.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(f"labels must lie in [0, {probabilities.shape[1]})")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):  # also rejects NaN
        raise ValueError("probabilities must lie in [0, 1]")
    return labels, log_probabilities(probabilities)
