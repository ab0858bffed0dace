"""The evaluation stage of a run: the trained classifier scored on each split, and
metrics.json's first blocks (scores, classes, training, data, and as asked: test-time
augmentation, calibration, ROC curves; or a multi-label run's `multi_label` block)."""
from __future__ import annotations

from absl import logging

from tftransfer.evaluate import metrics as classification_metrics, multi_label, splits


def _training_block(trained, warm_start) -> dict:
    block = {"phases": [vars(p) for p in trained.phases],
             "best_validation_accuracy": trained.best_validation_accuracy}
    if trained.start_score is not None:
        block["warm_start"] = {
            "trial_id": warm_start.trial_id, "validation_accuracy": trained.start_score,
            "kept": trained.best_validation_accuracy == trained.start_score}
    return block


def _data_block(data) -> dict:
    return {"sizes": data.sizes, "skipped": data.skipped, "class_counts": data.class_counts}


def _multi_label(classifier, data, trained, warm_start):
    """evaluate()'s counterpart for multi-hot labels: thresholds chosen on validation and
    each split's scores, in the `multi_label` block, instead of the split blocks."""
    predictions = {split: splits.predict_split(classifier, dataset)
                   for split, dataset in (("validation", data.validation), ("test", data.test))
                   if dataset is not None}
    block = multi_label.evaluate(predictions, data.class_names)
    shown = multi_label.evaluated_split(block)
    if shown:
        logging.info("Multi-label %s split: mAP %s, micro-F1 %.4f, macro-F1 %.4f", shown,
                     block[shown]["mean_average_precision"], block[shown]["micro_f1"],
                     block[shown]["macro_f1"])
    training = {**_training_block(trained, warm_start), "best_validation_accuracy": None,
                "best_validation_auc": trained.best_validation_accuracy}
    metrics = {"class_names": data.class_names, "multi_label": block, "training": training,
               "data": _data_block(data)}
    return classifier, metrics, predictions


def evaluate(classifier, data, trained, calibrate: bool = False, tta: str = "none",
             warm_start=None):
    """(the classifier the later stages use: with `calibrate`, the temperature-scaled one;
    metrics.json's first blocks; the predictions on each split). `trained`: the training's
    TrainResult; `warm_start`: the search.carry_over.WarmStart it started from, or None."""
    if data.multi_label:
        return _multi_label(classifier, data, trained, warm_start)
    scores, predictions = splits.evaluate_splits(classifier, data, tta)
    blocks = {}
    if tta != "none":
        blocks["tta"] = splits.tta_block(classifier, data, tta, scores)
    if calibrate:
        classifier, scores, predictions, blocks["calibration"] = splits.calibrate(
            classifier, data, scores, predictions, tta)
    metrics = {**scores, "class_names": data.class_names,
               "training": _training_block(trained, warm_start), "data": _data_block(data),
               **blocks}
    split = "test" if "test" in predictions else "validation"
    if split in predictions:
        metrics["roc_curves"] = {"split": split, **classification_metrics.roc_curves(
            *predictions[split], data.class_names)}
    return classifier, metrics, predictions
