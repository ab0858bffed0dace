"""Multi-label thresholds and scores (evaluate/multi_label.py), against hand counts."""
import numpy as np
import pytest

from tftransfer.evaluate import multi_label


def test_threshold_maximises_the_labels_f1():
    positive = np.array([1, 1, 0, 1, 0, 0], bool)
    scores = np.array([0.9, 0.6, 0.55, 0.3, 0.2, 0.1])
    # >= 0.6: P 1, R 2/3, F1 0.8; >= 0.3: P 3/4, R 1, F1 6/7 (best); >= 0.55: F1 2/3*...
    assert multi_label.best_f1_threshold(positive, scores) == pytest.approx(0.3)


def test_a_label_without_positives_keeps_the_default_threshold():
    thresholds = multi_label.choose_thresholds([[1, 0], [0, 0]], [[0.7, 0.9], [0.2, 0.1]])
    assert thresholds.tolist() == [0.7, multi_label.DEFAULT_THRESHOLD]


def test_scores_at_thresholds_match_hand_counts():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probabilities = np.array([[0.8, 0.3], [0.4, 0.9], [0.6, 0.2], [0.1, 0.7]])
    scores = multi_label.compute(labels, probabilities, [0.5, 0.5], ["a", "b"])
    # a: predicted rows 0, 2 (TP 1, FP 1, FN 1): F1 0.5. b: predicted rows 1, 3 (TP 1,
    # FP 1, FN 1): F1 0.5. Micro: TP 2, FP 2, FN 2: F1 0.5.
    assert scores["macro_f1"] == pytest.approx(0.5)
    assert scores["micro_f1"] == pytest.approx(0.5)
    # a ranked 0.8+, 0.6-, 0.4+, 0.1-: AP = (1 + 2/3) / 2; b: 0.9+, 0.7-, 0.3-, 0.2+: AP =
    # (1 + 2/4) / 2.
    assert scores["per_label"][0]["average_precision"] == pytest.approx(5 / 6)
    assert scores["per_label"][1]["average_precision"] == pytest.approx(3 / 4)
    assert scores["mean_average_precision"] == pytest.approx((5 / 6 + 3 / 4) / 2)
    # AUC a: positives {0.8, 0.4} vs negatives {0.6, 0.1}: 3 of 4 pairs; b: {0.9, 0.2} vs
    # {0.7, 0.3}: 2 of 4.
    assert [r["auc_roc"] for r in scores["per_label"]] == pytest.approx([0.75, 0.5])
    assert scores["exact_match"] == 0.25  # only row 0 has its whole label set right
    assert scores["num_examples"] == 4
    assert [r["support"] for r in scores["per_label"]] == [2, 2]


def test_labels_without_positives_are_left_out_of_the_means():
    scores = multi_label.compute([[1, 0], [0, 0]], [[0.9, 0.2], [0.1, 0.4]], [0.5, 0.5],
                                 ["a", "b"])
    assert scores["per_label"][1]["average_precision"] is None
    assert scores["per_label"][1]["auc_roc"] is None
    assert scores["mean_average_precision"] == 1.0 and scores["auc_roc_macro"] == 1.0
    assert scores["exact_match"] == 1.0


def test_evaluate_chooses_on_validation_and_scores_every_split():
    rng = np.random.default_rng(0)
    labels = rng.random((40, 3)) < 0.4
    probabilities = np.clip(labels * 0.5 + rng.random((40, 3)) * 0.5, 0, 1)
    block = multi_label.evaluate({"validation": (labels, probabilities),
                                  "test": (labels, probabilities)}, ["x", "y", "z"])
    chosen = multi_label.choose_thresholds(labels, probabilities)
    assert list(block["thresholds"].values()) == chosen.tolist()
    assert block["thresholds_from"] == "validation"
    assert block["test"] == block["validation"]
    without = multi_label.evaluate({"test": (labels, probabilities)}, ["x", "y", "z"])
    assert set(without["thresholds"].values()) == {multi_label.DEFAULT_THRESHOLD}


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="must both be"):
        multi_label.compute([1, 0], [[0.2, 0.3]], [0.5], ["a"])
