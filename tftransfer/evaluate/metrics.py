"""Classification metrics of a finished evaluation: integer labels, predicted probabilities
and class names in, a JSON-ready dict out.

TF/Keras implementations do the counting (confusion matrix, F1, AUC-ROC, top-5 accuracy);
only the expected calibration error, which Keras lacks, is written here.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


def compute(labels, probabilities, class_names: Sequence[str], num_bins: int = 15) -> dict:
    """Metrics of `probabilities` [N, C] against integer `labels` [N] in [0, C).

    The predicted class of a row is its first argmax; accuracy, F1, the confusion matrix,
    per-class scores and calibration all use it. Keys: accuracy, top5_accuracy (only when
    C >= 5), balanced_accuracy, macro_f1, weighted_f1, auc_roc_macro_ovr,
    expected_calibration_error, confusion_matrix (rows = true class, columns = predicted),
    per_class, loss (mean negative log-likelihood of the true class, no label smoothing),
    num_examples.

    Conventions:
    - balanced_accuracy is the mean recall over the classes present in `labels`.
    - precision of a class that is never predicted is 0.0; recall (and F1) of a class
      absent from `labels` is 0.0. macro_f1 averages over all C classes, weighted_f1
      weights them by support.
    - auc_roc_macro_ovr is the one-vs-rest AUC averaged over the classes present in
      `labels`; absent classes are skipped (they have no positives). None when fewer than
      two classes are present, since no class then has both positives and negatives.
    - top5_accuracy counts classes tied at the 5th score as in the top 5 (tf.math.in_top_k).
    - expected_calibration_error uses `num_bins` equal-width, right-closed bins of the max
      probability: sum over bins of |accuracy - mean confidence| * bin size / N.
    """
    labels, probabilities = _validated(labels, probabilities, class_names, num_bins)
    num_classes = probabilities.shape[1]
    predicted = np.argmax(probabilities, axis=1)
    confusion = tf.math.confusion_matrix(labels, predicted, num_classes=num_classes).numpy()
    result = {"accuracy": float(np.trace(confusion) / len(labels))}
    if num_classes >= 5:
        result["top5_accuracy"] = _top5_accuracy(labels, probabilities)
    support = confusion.sum(axis=1)
    present = support > 0
    result["balanced_accuracy"] = float(np.mean(np.diag(confusion)[present] / support[present]))
    result["macro_f1"] = float(_f1_scores(labels, predicted, num_classes, "macro"))
    result["weighted_f1"] = float(_f1_scores(labels, predicted, num_classes, "weighted"))
    result["auc_roc_macro_ovr"] = _auc_roc_macro_ovr(labels, probabilities)
    result["expected_calibration_error"] = _expected_calibration_error(
        labels, predicted, probabilities.max(axis=1), num_bins)
    result["confusion_matrix"] = confusion.tolist()
    per_class_f1 = _f1_scores(labels, predicted, num_classes, None)
    result["per_class"] = _per_class(confusion, per_class_f1, class_names)
    picked = probabilities[np.arange(len(labels)), labels]
    result["loss"] = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    result["num_examples"] = int(len(labels))
    return result


def _validated(labels, probabilities, class_names, num_bins) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be 2-D [N, C], got shape {probabilities.shape}")
    if labels.ndim != 1 or labels.shape[0] != probabilities.shape[0]:
        raise ValueError(f"labels must be 1-D with one entry per probabilities row, got shapes "
                         f"{labels.shape} and {probabilities.shape}")
    if labels.shape[0] == 0:
        raise ValueError("need at least one example")
    if len(class_names) != probabilities.shape[1]:
        raise ValueError(f"{len(class_names)} class names for {probabilities.shape[1]} columns")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(f"labels must lie in [0, {probabilities.shape[1]}), got "
                         f"[{labels.min()}, {labels.max()}]")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):  # also rejects NaN
        raise ValueError("probabilities must lie in [0, 1]")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    return labels, probabilities


def _top5_accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    metric = keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    metric.update_state(labels, probabilities.astype(np.float32))  # InTopK takes no float64
    return float(metric.result())


def _f1_scores(labels: np.ndarray, predicted: np.ndarray, num_classes: int, average):
    # One-hot argmax rather than raw probabilities: F1Score(threshold=None) marks every
    # class tied at the row maximum as predicted, which would disagree with the argmax.
    one_hot = np.eye(num_classes, dtype=np.float32)
    metric = keras.metrics.F1Score(average=average)
    metric.update_state(one_hot[labels], one_hot[predicted])
    return metric.result().numpy()


def _auc_roc_macro_ovr(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    present = np.unique(labels)
    if len(present) < 2:
        return None
    # Keras scores a label column without positives as AUC 0, so absent classes are dropped.
    metric = keras.metrics.AUC(num_thresholds=1000, curve="ROC", multi_label=True,
                               num_labels=len(present), from_logits=False)
    one_hot = np.eye(probabilities.shape[1], dtype=np.float32)[labels]
    metric.update_state(one_hot[:, present], probabilities[:, present].astype(np.float32))
    return float(metric.result())


def _expected_calibration_error(labels: np.ndarray, predicted: np.ndarray,
                                confidence: np.ndarray, num_bins: int) -> float:
    inner_edges = np.linspace(0.0, 1.0, num_bins + 1)[1:-1]
    bins = np.digitize(confidence, inner_edges, right=True)  # bin i is (edge_i, edge_i+1]
    correct = predicted == labels
    total_gap = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        total_gap += abs(correct[in_bin].mean() - confidence[in_bin].mean()) * in_bin.sum()
    return float(total_gap / len(labels))


def _per_class(confusion: np.ndarray, f1: np.ndarray, class_names) -> list[dict]:
    true_positives = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = np.divide(true_positives, predicted_count, out=np.zeros(len(support)),
                          where=predicted_count > 0)
    recall = np.divide(true_positives, support, out=np.zeros(len(support)), where=support > 0)
    return [{"class": str(name), "precision": float(precision[k]), "recall": float(recall[k]),
             "f1": float(f1[k]), "support": int(support[k])}
            for k, name in enumerate(class_names)]
