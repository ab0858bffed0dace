"""Metrics of a trained in-memory classifier on the validation and test splits, computed
exactly as `python -m tftransfer.evaluate` (cli/evaluate.py) computes them for an export."""
from __future__ import annotations

import keras
import numpy as np
from absl import logging

from tftransfer.config.errors import DataError
from tftransfer.data.pipeline import DataBundle
from tftransfer.evaluate import metrics as classification_metrics, temperature as temperature_fit
from tftransfer.model import temperature_layer, tta as tta_lib
from tftransfer.outputs import console


def predict_split(classifier: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], probabilities [N, C]) of one inference pass over a batched split.
    Keras's predict, so under a multi-worker strategy every worker gets every example."""
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    return labels, classifier.predict(dataset, verbose=console.progress_verbose())


def predict_batches(predict, batches) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], probabilities [N, C]) of `predict` (inputs as numpy -> probabilities)
    over batches of (inputs, labels): an export's signature or a compressed model."""
    labels, probabilities = [], []
    cardinality = int(batches.cardinality())
    progress = console.progress_bar(cardinality if cardinality >= 0 else None, "batch")
    for inputs, batch_labels in batches.as_numpy_iterator():
        probabilities.append(predict(inputs))
        labels.append(batch_labels)
        progress.add(1)
    return np.concatenate(labels), np.concatenate(probabilities)


def evaluate_splits(classifier: keras.Model, data: DataBundle, tta: str = "none"):
    """({split: metrics}, {split: (labels, probabilities)}) for the validation and test
    splits that exist; the metrics are computed exactly as for an exported model. `tta`:
    the test-time augmentation (model/tta.py) the predictions average over."""
    classifier = tta_lib.with_tta(classifier, tta)
    metrics, predictions = {}, {}
    for split, dataset in (("validation", data.validation), ("test", data.test)):
        if dataset is not None:
            predictions[split] = predict_split(classifier, dataset)
            metrics[split] = classification_metrics.compute(*predictions[split],
                                                            data.class_names)
    return metrics, predictions


def tta_block(classifier: keras.Model, data: DataBundle, tta: str, scores: dict) -> dict:
    """metrics.json's `tta` block: the mode and, per split, the accuracy and loss with it
    (`scores`, evaluate_splits' with `tta`) and without it (measured here)."""
    plain, _ = evaluate_splits(classifier, data)
    block = {"mode": tta}
    for split in plain:
        block[split] = {f"{key}{suffix}": value[split][key] for key in ("accuracy", "loss")
                        for suffix, value in (("", scores), ("_without_tta", plain))}
    logging.info("Test-time augmentation %s: accuracy without and with %s", tta, {
        split: (round(block[split]["accuracy_without_tta"], 4),
                round(block[split]["accuracy"], 4)) for split in plain})
    return block


def calibrate(classifier, data: DataBundle, scores: dict, predictions: dict,
              tta: str = "none"):
    """Temperature scaling (--calibrate): fits T on the validation predictions, folds it
    into the classifier and evaluates that again. Returns (the calibrated classifier, its
    {split: metrics}, its predictions, metrics.json's `calibration` block: T and, per split,
    ECE, NLL and accuracy before and after, with the reliability bins of the test split,
    else validation). With `tta`, T is fitted on and evaluated with its averaged
    predictions; the temperature divides each pass's logits."""
    if "validation" not in predictions:
        raise DataError("--calibrate: the data has no validation split to fit the "
                        "temperature on; set --validation_fraction > 0")
    temperature = temperature_fit.fit_temperature(*predictions["validation"])
    if temperature_fit.at_bound(temperature):
        logging.warning("Calibration: the temperature %.3f sits at its bound %s",
                        temperature, temperature_fit.BOUNDS)
    calibrated = temperature_layer.with_temperature(classifier, temperature)
    after, after_predictions = evaluate_splits(calibrated, data, tta)
    block = {"temperature": temperature, "fitted_on": "validation"}
    for split in after:
        block[split] = {f"{key}_{when}": value[split][metric]
                        for key, metric in (("ece", "expected_calibration_error"),
                                            ("nll", "loss"), ("accuracy", "accuracy"))
                        for when, value in (("before", scores), ("after", after))}
    shown = "test" if "test" in after else "validation"
    block["reliability"] = {"split": shown, **{
        when: classification_metrics.reliability_bins(*value[shown])
        for when, value in (("before", predictions), ("after", after_predictions))}}
    logging.info("Calibration: temperature %.3f; %s", temperature, {
        split: (round(block[split]["ece_before"], 4), round(block[split]["ece_after"], 4))
        for split in after})
    return calibrated, after, after_predictions, block
