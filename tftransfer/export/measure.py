"""The `performance` block of an export: the in-memory model and the SavedModel's bytes
signature timed side by side (evaluate/performance.py), with the export's size."""
from __future__ import annotations

import keras

from tftransfer.evaluate import performance
from tftransfer.export import client as client_lib, signatures


def performance_block(classifier: keras.Model, export_dir: str, image_size: int,
                      serving_batch: int = 32, repeats: int = 30) -> dict:
    """`export_dir`: a version folder, or a base folder (its highest version)."""
    client = client_lib.ServingClient(export_dir)
    return performance.measure(classifier, client.caller(signatures.BYTES), client.model_dir,
                               image_size, serving_batch=serving_batch, repeats=repeats)
