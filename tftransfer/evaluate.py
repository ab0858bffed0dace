"""The evaluation stage: metrics of the trained classifier on the held-out splits."""
from __future__ import annotations

import keras

from tftransfer.data import DataBundle


def evaluate_splits(classifier: keras.Model, data: DataBundle) -> dict[str, dict[str, float]]:
    """{split: {loss, accuracy[, top5_accuracy]}} for validation and test when present."""
    results = {}
    for split, dataset in (("validation", data.validation), ("test", data.test)):
        if dataset is not None:
            scores = classifier.evaluate(dataset, return_dict=True, verbose=0)
            results[split] = {name: float(value) for name, value in scores.items()}
    return results
