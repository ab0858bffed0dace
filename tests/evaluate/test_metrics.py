"""classification_metrics.compute against numbers worked out by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tftransfer.evaluate import metrics as classification_metrics

NAMES3 = ["cat", "dog", "fox"]

# 10 examples, 3 classes; no row has a tie, no confidence sits on a 4-bin edge.
LABELS = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PROBS = [
    [0.70, 0.20, 0.10],  # pred 0, conf .70, right
    [0.60, 0.30, 0.10],  # pred 0, conf .60, right
    [0.30, 0.52, 0.18],  # pred 1, conf .52, wrong
    [0.90, 0.05, 0.05],  # pred 0, conf .90, right
    [0.10, 0.80, 0.10],  # pred 1, conf .80, right
    [0.20, 0.70, 0.10],  # pred 1, conf .70, right
    [0.45, 0.35, 0.20],  # pred 0, conf .45, wrong
    [0.10, 0.10, 0.80],  # pred 2, conf .80, right
    [0.20, 0.20, 0.60],  # pred 2, conf .60, right
    [0.10, 0.55, 0.35],  # pred 1, conf .55, wrong
]
# Columns: predicted 0 -> 4 times, 1 -> 4 times, 2 -> 2 times.
CONFUSION = [[3, 1, 0], [1, 2, 0], [0, 1, 2]]
PRECISION = [3 / 4, 2 / 4, 2 / 2]
RECALL = [3 / 4, 2 / 3, 2 / 3]
F1 = [3 / 4, 4 / 7, 4 / 5]  # 2pr/(p+r): .75; (2/3)/(7/6); (4/3)/(5/3)
SUPPORT = [4, 3, 3]


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_fixed_example_matches_hand_counts():
    result = classification_metrics.compute(LABELS, PROBS, NAMES3, num_bins=4)
    assert set(result) == {"accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
                           "auc_roc_macro_ovr", "expected_calibration_error",
                           "confusion_matrix", "per_class", "loss", "num_examples"}
    assert result["num_examples"] == 10
    assert result["accuracy"] == pytest.approx(7 / 10)
    assert result["confusion_matrix"] == CONFUSION
    for row, name, p, r, f, s in zip(result["per_class"], NAMES3, PRECISION, RECALL, F1, SUPPORT):
        assert row["class"] == name and row["support"] == s
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(r)
        assert row["f1"] == pytest.approx(f, abs=1e-6)  # Keras adds a 1e-7 epsilon
    assert result["macro_f1"] == pytest.approx(sum(F1) / 3, abs=1e-6)
    assert result["weighted_f1"] == pytest.approx((4 * F1[0] + 3 * F1[1] + 3 * F1[2]) / 10,
                                                  abs=1e-6)
    # Bins (.25,.5], (.5,.75], (.75,1]:
    #   .45 wrong                       -> |0 - .45| * 1          = .45
    #   .70 .60 .52 .70 .60 .55, 4 right -> |4/6 - 3.67/6| * 6     = .33
    #   .90 .80 .80 all right           -> |1 - 2.5/3| * 3        = .50
    assert result["expected_calibration_error"] == pytest.approx((0.45 + 0.33 + 0.50) / 10)
    assert all(type(leaf) in (int, float, str) for leaf in _leaves(result))
    json.dumps(result)


def test_default_bins_and_top5_absent_below_five_classes():
    result = classification_metrics.compute(LABELS, PROBS, NAMES3)
    assert "top5_accuracy" not in result
    assert 0.0 <= result["expected_calibration_error"] <= 1.0


# One-vs-rest AUC = fraction of (positive, negative) pairs ranked right, ties count 1/2.
AUC_LABELS = [0, 0, 1, 1, 2, 2]
AUC_PROBS = [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1],
             [0.5, 0.2, 0.3], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3]]
# class 0: pos .8 .4 vs neg .3 .5 .2 .1 -> 4 + 3            = 7/8
# class 1: pos .6 .2 vs neg .1 .5 .2 .6 -> 3.5 + 1.5        = 5/8
# class 2: pos .6 .3 vs neg .1 .1 .1 .3 -> 4 + 3.5          = 7.5/8
AUC_MACRO = (7 / 8 + 5 / 8 + 7.5 / 8) / 3


def test_auc_counts_ordered_pairs():
    result = classification_metrics.compute(AUC_LABELS, AUC_PROBS, NAMES3)
    assert result["auc_roc_macro_ovr"] == pytest.approx(AUC_MACRO, abs=1e-3)


def test_auc_skips_classes_absent_from_labels():
    probs = np.hstack([AUC_PROBS, np.zeros((6, 1))])
    result = classification_metrics.compute(AUC_LABELS, probs, NAMES3 + ["owl"])
    assert result["auc_roc_macro_ovr"] == pytest.approx(AUC_MACRO, abs=1e-3)
    owl = result["per_class"][3]
    assert (owl["precision"], owl["recall"], owl["f1"], owl["support"]) == (0.0, 0.0, 0.0, 0)


def test_auc_is_none_with_a_single_present_class():
    result = classification_metrics.compute([1, 1], [[0.3, 0.7], [0.6, 0.4]], ["a", "b"])
    assert result["auc_roc_macro_ovr"] is None
    assert result["per_class"][0]["precision"] == 0.0  # predicted once, never right


def test_never_predicted_class_has_precision_zero():
    result = classification_metrics.compute([0, 1, 2], [[.8, .1, .1], [.6, .3, .1], [.1, .2, .7]],
                                            NAMES3)
    dog = result["per_class"][1]
    assert (dog["precision"], dog["recall"], dog["f1"]) == (0.0, 0.0, 0.0)


def test_tied_maximum_counts_as_first_argmax_only():
    # Row 0 ties classes 0 and 1; argmax says 0, so class 1's only example is missed.
    result = classification_metrics.compute([1, 2], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], NAMES3)
    assert result["confusion_matrix"] == [[0, 0, 0], [1, 0, 0], [0, 0, 1]]
    assert [row["f1"] for row in result["per_class"]] == pytest.approx([0.0, 0.0, 1.0], abs=1e-6)


def test_top5_accuracy_with_six_classes():
    labels = [0, 5, 2]
    probs = [[0.50, 0.20, 0.10, 0.08, 0.07, 0.05],  # label ranked 1st -> hit
             [0.30, 0.25, 0.20, 0.15, 0.09, 0.01],  # label ranked 6th -> miss
             [0.35, 0.25, 0.06, 0.20, 0.10, 0.04]]  # label ranked 5th -> hit
    result = classification_metrics.compute(labels, probs, list("abcdef"))
    assert result["top5_accuracy"] == pytest.approx(2 / 3)


def test_perfect_one_hot_predictions():
    labels = [0, 1, 2, 3, 4, 0, 2]
    result = classification_metrics.compute(labels, np.eye(5)[labels], list("abcde"))
    for key in ("accuracy", "top5_accuracy", "macro_f1", "weighted_f1", "auc_roc_macro_ovr"):
        assert result[key] == pytest.approx(1.0, abs=1e-6), key
    for row in result["per_class"]:
        assert [row["precision"], row["recall"], row["f1"]] == pytest.approx([1.0] * 3, abs=1e-6)
    assert result["expected_calibration_error"] == 0.0
    assert result["confusion_matrix"] == np.diag([2, 1, 2, 1, 1]).tolist()


@pytest.mark.parametrize("labels, probs, names", [
    ([0, 1], [0.2, 0.8], ["a", "b"]),                      # probabilities 1-D
    ([0, 1, 1], [[0.2, 0.8], [0.6, 0.4]], ["a", "b"]),     # N disagrees
    ([[0], [1]], [[0.2, 0.8], [0.6, 0.4]], ["a", "b"]),    # labels 2-D
    ([0, 2], [[0.2, 0.8], [0.6, 0.4]], ["a", "b"]),        # label out of range
    ([0, -1], [[0.2, 0.8], [0.6, 0.4]], ["a", "b"]),       # negative label
    ([0.0, 1.0], [[0.2, 0.8], [0.6, 0.4]], ["a", "b"]),    # float labels
    ([0, 1], [[0.2, 0.8], [0.6, 0.4]], ["a"]),             # class names disagree
    ([0, 1], [[0.2, 1.8], [0.6, 0.4]], ["a", "b"]),        # not probabilities
    ([0, 1], [[0.2, np.nan], [0.6, 0.4]], ["a", "b"]),     # NaN
    ([], np.zeros((0, 2)), ["a", "b"]),                    # empty
])
def test_bad_inputs_raise_one_line_value_error(labels, probs, names):
    with pytest.raises(ValueError) as error:
        classification_metrics.compute(labels, probs, names)
    assert "\n" not in str(error.value)


def test_bad_num_bins_raises():
    with pytest.raises(ValueError):
        classification_metrics.compute([0, 1], [[0.2, 0.8], [0.6, 0.4]], ["a", "b"], num_bins=0)


def test_loss_is_the_mean_negative_log_likelihood_of_the_true_class():
    result = classification_metrics.compute(LABELS, np.array(PROBS), ["a", "b", "c"])
    true_class = [PROBS[i][label] for i, label in enumerate(LABELS)]
    assert result["loss"] == pytest.approx(-np.mean(np.log(true_class)), rel=1e-6)


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    result = classification_metrics.compute(LABELS, PROBS, NAMES3)
    assert result["balanced_accuracy"] == pytest.approx(np.mean(RECALL))
    # A class no test example belongs to does not count.
    absent = classification_metrics.compute([0, 0, 1], [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1],
                                                        [0.1, 0.8, 0.1]], NAMES3)
    assert absent["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)


def test_reliability_bins_are_the_bins_of_the_ece():
    bins = classification_metrics.reliability_bins(LABELS, PROBS, num_bins=4)
    # The hand-worked bins of test_fixed_example_matches_hand_counts.
    assert bins["count"] == [0, 1, 6, 3]
    assert bins["accuracy"] == pytest.approx([None, 0.0, 4 / 6, 1.0])
    assert bins["confidence"] == pytest.approx([None, 0.45, 3.67 / 6, 2.5 / 3])
    assert bins["expected_calibration_error"] == pytest.approx(
        classification_metrics.compute(LABELS, PROBS, NAMES3, num_bins=4)[
            "expected_calibration_error"])
    json.dumps(bins)
    with pytest.raises(ValueError, match="2-D"):
        classification_metrics.reliability_bins([0, 1], [0.2, 0.8])


def test_roc_curves_follow_the_ranking_and_average_the_classes():
    curves = classification_metrics.roc_curves(AUC_LABELS, AUC_PROBS, NAMES3)
    assert [c["class"] for c in curves["classes"]] == NAMES3
    for curve, auc in zip(curves["classes"], (7 / 8, 5 / 8, 7.5 / 8)):
        assert curve["auc"] == pytest.approx(auc)
        assert len(curve["tpr"]) == len(curves["fpr"])
        assert curve["tpr"][-1] == 1.0 and np.all(np.diff(curve["tpr"]) >= 0)
    assert curves["fpr"][0] == 0.0 and curves["fpr"][-1] == 1.0
    assert curves["macro"]["auc"] == pytest.approx(AUC_MACRO)
    np.testing.assert_allclose(curves["macro"]["tpr"],
                               np.mean([c["tpr"] for c in curves["classes"]], axis=0),
                               atol=1e-5)
    json.dumps(curves)


def test_roc_curves_skip_absent_classes_and_keep_the_worst_when_capped():
    probs = np.hstack([AUC_PROBS, np.zeros((6, 1))])
    curves = classification_metrics.roc_curves(AUC_LABELS, probs, NAMES3 + ["owl"],
                                               max_classes=2)
    assert set(curves["auc_per_class"]) == set(NAMES3)           # owl has no positives
    assert [c["class"] for c in curves["classes"]] == ["cat", "dog"]  # the two lowest AUCs
    assert curves["macro"]["auc"] == pytest.approx(AUC_MACRO)
    single = classification_metrics.roc_curves([1, 1], [[0.3, 0.7], [0.6, 0.4]], ["a", "b"])
    assert single["macro"] is None and single["classes"] == []


def test_a_perfect_ranking_has_a_step_roc_curve():
    labels = [0, 0, 1, 1]
    curves = classification_metrics.roc_curves(labels, [[.9, .1], [.8, .2], [.3, .7], [.4, .6]],
                                               ["a", "b"])
    for curve in curves["classes"]:
        assert curve["auc"] == 1.0 and curve["tpr"][1:] == [1.0] * (len(curve["tpr"]) - 1)
