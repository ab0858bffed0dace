"""Classification metrics of a finished evaluation: integer labels, predicted probabilities
and class names in, a JSON-ready dict out.

TF/Keras implementations do the counting (confusion matrix, F1, AUC-ROC, top-5 accuracy);
only the expected calibration error and its reliability bins, which Keras lacks, are
written here. The one-vs-rest ROC curves are scikit-learn's.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as sklearn_metrics

# The false-positive rates a stored ROC curve is sampled at: evenly spaced, and
# log-spaced below 5 %, where a good classifier's curve rises.
ROC_FPR_GRID = np.unique(np.concatenate([np.linspace(0.0, 1.0, 51),
                                         np.geomspace(1e-4, 0.05, 28)]).round(6))
MAX_ROC_CLASSES = 10    # curves kept besides the macro average: the lowest-AUC classes


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


def _bin_of(confidence: np.ndarray, num_bins: int) -> np.ndarray:
    inner_edges = np.linspace(0.0, 1.0, num_bins + 1)[1:-1]
    return np.digitize(confidence, inner_edges, right=True)  # bin i is (edge_i, edge_i+1]


def _expected_calibration_error(labels: np.ndarray, predicted: np.ndarray,
                                confidence: np.ndarray, num_bins: int) -> float:
    bins = _bin_of(confidence, num_bins)
    correct = predicted == labels
    total_gap = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        total_gap += abs(correct[in_bin].mean() - confidence[in_bin].mean()) * in_bin.sum()
    return float(total_gap / len(labels))


def reliability_bins(labels, probabilities, num_bins: int = 15) -> dict:
    """The reliability diagram's data, binned as compute()'s expected_calibration_error:
    per equal-width bin of the max probability, its example count, accuracy and mean
    confidence (None in empty bins), plus that ECE."""
    width = np.shape(probabilities)[-1] if np.ndim(probabilities) else 0
    labels, probabilities = _validated(labels, probabilities, range(width), num_bins)
    predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities.max(axis=1)
    bins = _bin_of(confidence, num_bins)
    correct = predicted == labels
    counts, accuracy, mean_confidence = [], [], []
    for b in range(num_bins):
        in_bin = bins == b
        counts.append(int(in_bin.sum()))
        accuracy.append(float(correct[in_bin].mean()) if in_bin.any() else None)
        mean_confidence.append(float(confidence[in_bin].mean()) if in_bin.any() else None)
    return {"num_bins": num_bins, "count": counts, "accuracy": accuracy,
            "confidence": mean_confidence,
            "expected_calibration_error": _expected_calibration_error(
                labels, predicted, confidence, num_bins)}


def roc_curves(labels, probabilities, class_names: Sequence[str],
               max_classes: int = MAX_ROC_CLASSES) -> dict:
    """One-vs-rest ROC curves, compactly: every class's true-positive rate sampled at
    ROC_FPR_GRID (the curve's step interpolated linearly), their macro average, and each
    class's exact AUC. Classes absent from `labels` (no positives) or making up all of it
    (no negatives) have no curve. Only the `max_classes` lowest-AUC classes keep theirs
    (all of them when there are no more); the macro average covers every class."""
    labels, probabilities = _validated(labels, probabilities, class_names, 1)
    curves = []
    for k, name in enumerate(class_names):
        positive = labels == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = sklearn_metrics.roc_curve(positive, probabilities[:, k])
        curves.append({"class": str(name), "index": k,
                       "auc": float(sklearn_metrics.auc(fpr, tpr)),
                       "tpr": np.interp(ROC_FPR_GRID, fpr, tpr)})
    result = {"fpr": _rounded(ROC_FPR_GRID), "classes": [], "macro": None}
    if not curves:
        return result
    macro_tpr = np.mean([c["tpr"] for c in curves], axis=0)
    result["macro"] = {"auc": float(np.mean([c["auc"] for c in curves])),
                       "tpr": _rounded(macro_tpr)}
    result["auc_per_class"] = {c["class"]: c["auc"] for c in curves}
    kept = sorted(curves, key=lambda c: c["auc"])[:max_classes]
    result["classes"] = [{**c, "tpr": _rounded(c["tpr"])}
                         for c in sorted(kept, key=lambda c: c["index"])]
    return result


def _rounded(values) -> list[float]:
    return [round(float(v), 5) for v in values]


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
