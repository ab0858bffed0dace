"""Metrics of a trained in-memory classifier on the validation and test splits, computed
exactly as `python -m tftransfer.evaluate` (cli/evaluate.py) computes them for an export."""
from __future__ import annotations

import keras
import numpy as np

from tftransfer.data.pipeline import DataBundle
from tftransfer.evaluate import metrics as classification_metrics
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


def evaluate_splits(classifier: keras.Model, data: DataBundle):
    """({split: metrics}, {split: (labels, probabilities)}) for the validation and test
    splits that exist; the metrics are computed exactly as for an exported model."""
    metrics, predictions = {}, {}
    for split, dataset in (("validation", data.validation), ("test", data.test)):
        if dataset is not None:
            predictions[split] = predict_split(classifier, dataset)
            metrics[split] = classification_metrics.compute(*predictions[split],
                                                            data.class_names)
    return metrics, predictions
