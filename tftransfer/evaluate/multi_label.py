"""Multi-label evaluation (--labels_csv): multi-hot labels [N, L] and per-label sigmoid
probabilities [N, L] in, JSON-ready dicts out.

A threshold per label is chosen on the validation split (the one maximising that label's
F1); the test split is then scored at those thresholds: micro and macro F1, mean average
precision (the mean over labels of scikit-learn's average precision) and per-label
ROC AUC. Labels without positives in a split have no average precision or AUC there and
are left out of the means.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn import metrics as sklearn_metrics

DEFAULT_THRESHOLD = 0.5   # a label the validation split cannot tune (no positives there)
# Keys of a split's block that are scalars (TensorBoard, the report's table).
SCALAR_KEYS = ("mean_average_precision", "micro_f1", "macro_f1", "auc_roc_macro",
               "exact_match", "loss")


def _validated(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != probabilities.shape:
        raise ValueError(f"labels and probabilities must both be [N, L], got shapes "
                         f"{labels.shape} and {probabilities.shape}")
    if labels.shape[0] == 0:
        raise ValueError("need at least one example")
    return labels > 0.5, probabilities


def best_f1_threshold(positive: np.ndarray, scores: np.ndarray) -> float:
    """The threshold (predict `score >= threshold`) with the highest F1 for one label;
    DEFAULT_THRESHOLD without positives. Ties go to the highest threshold."""
    if not positive.any():
        return DEFAULT_THRESHOLD
    precision, recall, thresholds = sklearn_metrics.precision_recall_curve(positive, scores)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=(precision + recall) > 0)[:-1]
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thresholds[best])


def choose_thresholds(labels, probabilities) -> np.ndarray:
    """[L] per-label thresholds maximising each label's F1 on these predictions."""
    positive, probabilities = _validated(labels, probabilities)
    return np.array([best_f1_threshold(positive[:, k], probabilities[:, k])
                     for k in range(positive.shape[1])])


def predicted_at(probabilities, thresholds) -> np.ndarray:
    """[N, L] booleans: which labels are at or above their threshold."""
    return np.asarray(probabilities) >= np.asarray(thresholds)[None, :]


def compute(labels, probabilities, thresholds: Sequence[float],
            label_names: Sequence[str]) -> dict:
    """A split's scores at `thresholds`. Keys: SCALAR_KEYS (exact_match: the share of
    images whose whole label set is right; loss: the mean binary cross-entropy; either
    mean is None when no label has both positives and negatives), num_examples and
    per_label [{label, threshold, average_precision, auc_roc, precision, recall, f1,
    support}]."""
    positive, probabilities = _validated(labels, probabilities)
    if len(label_names) != positive.shape[1] or len(thresholds) != positive.shape[1]:
        raise ValueError(f"{len(label_names)} names and {len(thresholds)} thresholds for "
                         f"{positive.shape[1]} labels")
    predicted = predicted_at(probabilities, thresholds)
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        positive, predicted, average=None, zero_division=0)
    per_label, ap, auc = [], [], []
    for k, name in enumerate(label_names):
        column = positive[:, k]
        both = column.any() and not column.all()
        ap_k = float(sklearn_metrics.average_precision_score(column, probabilities[:, k])) \
            if column.any() else None
        auc_k = float(sklearn_metrics.roc_auc_score(column, probabilities[:, k])) \
            if both else None
        ap += [ap_k] if ap_k is not None else []
        auc += [auc_k] if auc_k is not None else []
        per_label.append({"label": str(name), "threshold": float(thresholds[k]),
                          "average_precision": ap_k, "auc_roc": auc_k,
                          "precision": float(precision[k]), "recall": float(recall[k]),
                          "f1": float(f1[k]), "support": int(support[k])})
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    loss = -np.mean(positive * np.log(clipped) + (~positive) * np.log(1 - clipped))
    return {"mean_average_precision": float(np.mean(ap)) if ap else None,
            "micro_f1": float(sklearn_metrics.f1_score(positive, predicted, average="micro",
                                                       zero_division=0)),
            "macro_f1": float(np.mean(f1)),
            "auc_roc_macro": float(np.mean(auc)) if auc else None,
            "exact_match": float(np.mean(np.all(predicted == positive, axis=1))),
            "loss": float(loss), "num_examples": int(positive.shape[0]),
            "per_label": per_label}


def evaluate(predictions: dict, label_names: Sequence[str]) -> dict:
    """metrics.json's `multi_label` block from {split: (labels, probabilities)}: the
    thresholds (chosen on validation, else DEFAULT_THRESHOLD) and each split's scores."""
    if "validation" in predictions:
        thresholds, source = choose_thresholds(*predictions["validation"]), "validation"
    else:
        thresholds = np.full(len(label_names), DEFAULT_THRESHOLD)
        source = f"default {DEFAULT_THRESHOLD} (no validation split)"
    block = {"label_names": list(label_names),
             "thresholds": {str(n): float(t) for n, t in zip(label_names, thresholds)},
             "thresholds_from": source}
    for split, pair in predictions.items():
        block[split] = compute(*pair, thresholds, label_names)
    return block


def evaluated_split(block: dict) -> str | None:
    """The split whose scores stand for the model: test, else validation."""
    return "test" if "test" in block else "validation" if "validation" in block else None
