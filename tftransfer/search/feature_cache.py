"""Cached backbone features for frozen search trials.

A frozen backbone without augmentation maps every image to the same feature vector in
every epoch of every trial, so features are computed once per (backbone, resolution,
split, data fingerprint) and stored under `<output_dir>/features/`. Heads then train on
the features alone; the same head model is later put back on the backbone.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.outputs import console, folder_lock


def cache_key(**parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _extract(backbone: keras.layers.Layer, images: tf.data.Dataset, image_size: int):
    inputs = keras.Input((image_size, image_size, 3))
    extractor = keras.Model(inputs, backbone(inputs, training=False))
    features, labels = [], []
    progress = console.progress_bar(None, unit_name="batch")
    for batch_images, batch_labels in images:
        features.append(extractor(batch_images, training=False).numpy())
        labels.append(batch_labels.numpy())
        progress.add(1)
    return np.concatenate(features), np.concatenate(labels)


class FeatureCache:
    def __init__(self, root: str):
        self.root = root
        self.extractions = 0   # how often the backbone ran (tests assert reuse)

    def path(self, key: str, split: str) -> str:
        return os.path.join(self.root, key, f"{split}.npz")

    def get(self, key: str, split: str, backbone_factory, images: tf.data.Dataset,
            image_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of `images` (batched, float in [0, 1]); computed once.

        Processes sharing the folder (the tuner workers of a distributed search) take turns:
        the first extracts, the others wait and read its file."""
        path = self.path(key, split)
        with folder_lock.exclusive(f"{path}.lock"):
            stored = _read(path)
            if stored is None:
                logging.info("Extracting %s features once into %s", split, path)
                stored = _extract(backbone_factory(), images, image_size)
                self.extractions += 1
                _write(path, *stored)
        return stored


def _read(path: str) -> tuple[np.ndarray, np.ndarray] | None:
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as stored:
            return stored["features"], stored["labels"]
    # A file cut short (a full disk) or not ours is extracted again rather than trusted.
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        logging.warning("Extracting again: cannot read cached features %s (%s)", path, error)
        return None


def _write(path: str, features: np.ndarray, labels: np.ndarray) -> None:
    staging = f"{path}.{uuid.uuid4().hex[:8]}.tmp.npz"
    np.savez(staging, features=features, labels=labels)
    os.replace(staging, path)


def feature_dataset(features: np.ndarray | tf.Tensor, labels: np.ndarray | tf.Tensor,
                    batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of (features, labels), reshuffled every epoch when seeded.

    Only row indices go through tf.data one at a time; each batch is one gather from the
    in-memory arrays. Slicing example by example cost more than the head's own step.
    """
    features, labels = tf.constant(features), tf.constant(labels)
    rows = tf.data.Dataset.range(len(features))
    if shuffle_seed is not None:
        rows = rows.shuffle(len(features), seed=shuffle_seed, reshuffle_each_iteration=True)
    return rows.batch(batch_size).map(
        lambda batch_rows: (tf.gather(features, batch_rows), tf.gather(labels, batch_rows)),
        num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
