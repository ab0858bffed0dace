"""The input stage: a TFDS name or an image folder -> batched tf.data splits.

Every split yields (float32 images [B, S, S, 3] in [0, 1], int32 labels [B]); a training
split mixed by mixup or cutmix yields float32 one-hot soft labels [B, C] instead, and
--labels_csv or a TFDS sequence label float32 multi-hot labels [B, L]. Decoding and
resizing run in parallel and are cached as uint8 (in memory when it fits, else on disk);
augmentation (augment.py) runs on training batches only. The resizing and scaling are
preprocess.py's, which the serving signatures share.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.config.errors import DataError
from tftransfer.config.run_config import NATIVE_IMAGE_SIZE, DataConfig, is_tfds_name
from tftransfer.data import augment as augment_lib, csv_source, folder_source, tfds_source
from tftransfer.data.preprocess import to_rgb_resized, to_unit_float

AUTOTUNE = tf.data.AUTOTUNE
RESIZE_BATCH = 256             # images resized per call, when they are equal-sized
RESIZE_BATCH_BYTES = 2**24     # ... and small enough for this many bytes of them
OWN_SIZE_SAMPLE = 32           # training images whose sides give the data's own size


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split before batching: (image uint8 [H, W, C] or file path, label) pairs."""
    dataset: tf.data.Dataset
    size: int
    from_files: bool


@dataclasses.dataclass(frozen=True)
class DataBundle:
    class_names: list[str]
    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    sizes: dict[str, int]
    class_counts: dict[str, list[int]]
    skipped: dict[str, int]
    train_unbatched: tf.data.Dataset = None     # resized uint8, before shuffling/augmentation
    fingerprint: str = ""                       # identifies the examples in each split
    image_size: int = NATIVE_IMAGE_SIZE         # the side every split is resized to
    # The data's own image side (the median longer side of a sample), measured when
    # --image_size=0 leaves the resolution open; None when the flag fixed it.
    own_size: int | None = None
    sources: dict | None = None                 # split -> Examples, for at_image_size
    native_size: int = NATIVE_IMAGE_SIZE        # the backbone's: what --image_size=0 took

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        """Multi-hot labels [L] per image (--labels_csv), not one class index. Read from
        the unbatched split: mixup's and cutmix's soft labels exist only in batches."""
        if self.train_unbatched is not None:
            return self.train_unbatched.element_spec[1].shape.rank == 1
        return self.train.element_spec[1].shape.rank == 2


def _decoded(examples: Examples, size: int) -> tf.data.Dataset:
    def prepare(image_or_path, label):
        image = folder_source.decode_file(image_or_path) if examples.from_files else image_or_path
        if not label.dtype.is_floating:  # multi-hot labels stay float32
            label = tf.cast(label, tf.int32)
        return to_rgb_resized(image, size), label

    shape = examples.dataset.element_spec[0].shape
    if examples.from_files or not shape.is_fully_defined():
        return examples.dataset.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    # Equal-sized images (most TFDS datasets) are resized a batch at a time: the same pixels
    # for a fraction of the per-image calls' overhead.
    per_call = max(1, min(RESIZE_BATCH, RESIZE_BATCH_BYTES // shape.num_elements()))
    resized = examples.dataset.batch(per_call).map(
        prepare, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
    return resized.apply(tf.data.experimental.assert_cardinality(examples.size))


def _cached(ds: tf.data.Dataset, split: str, n: int, cfg: DataConfig, cache_dir: str):
    mode = cfg.cache
    if mode == "auto":
        megabytes = n * cfg.image_size * cfg.image_size * 3 / 2**20
        mode = "memory" if megabytes <= cfg.cache_limit_mb else "disk"
    if mode == "memory":
        return ds.cache()
    if mode == "disk":
        os.makedirs(cache_dir, exist_ok=True)
        return ds.cache(os.path.join(cache_dir, f"{split}_{cfg.image_size}px"))
    return ds


def _to_float(images, labels):
    return to_unit_float(images), labels


def replica_safe_batch_size(batch_size: int, split_size: int, replicas: int) -> int:
    """A batch size <= batch_size whose first and last batches give every replica data.

    Keras 3.15 builds a distributed model from the first batch reduced across replicas
    (fails when it splits unevenly), and a restored SavedModel function fails on the empty
    per-replica batch a tiny final batch leaves. Usually batch_size itself qualifies."""
    if replicas <= 1:
        return batch_size
    for candidate in range(min(batch_size, split_size), 0, -1):
        remainder = split_size % candidate
        if candidate % replicas == 0 and (remainder == 0 or remainder >= replicas):
            return candidate
    raise DataError(f"a split of {split_size} examples cannot feed {replicas} replicas")


def _shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Multi-worker input: each worker reads the same identically shuffled (same seed)
    examples and keeps its own share of every batch. FILE sharding (tf.data's AUTO pick for
    TFDS's record files) would split files that may be fewer than the workers, beneath the
    cache and the held-out split; folder pipelines read no files tf.data can see."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return ds.with_options(options)


def batched(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    ds = ds.batch(batch_size).map(_to_float, num_parallel_calls=AUTOTUNE)
    return _shard_by_data(ds.prefetch(AUTOTUNE))


def training_pipeline(ds: tf.data.Dataset, cfg: DataConfig, seed: int,
                      batch_size: int, num_classes: int = 0) -> tf.data.Dataset:
    """`num_classes`: needed when mixup or cutmix make the labels one-hot soft labels."""
    ds = ds.shuffle(cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(_to_float, num_parallel_calls=AUTOTUNE)
    augment = augment_lib.augmenter(cfg.augmentations if cfg.augment else (), num_classes)
    if augment:
        ds = augment_lib.seeded_batches(ds, seed).map(augment, num_parallel_calls=AUTOTUNE)
    return _shard_by_data(ds.prefetch(AUTOTUNE))


def training_batches(examples: tf.data.Dataset, size: int, cfg: DataConfig, seed: int,
                     replicas: int, num_classes: int = 0) -> tf.data.Dataset:
    """The training pipeline of `size` unbatched uint8 examples, as `cfg` and `seed` shape
    it, in batches that give each of `replicas` replicas data."""
    batch_size = replica_safe_batch_size(cfg.batch_size, size, replicas)
    return training_pipeline(examples, cfg, seed, batch_size, num_classes)


def with_train_split(bundle: DataBundle, cfg: DataConfig, seed: int,
                     replicas: int) -> DataBundle:
    """A copy of `bundle` whose train split is shuffled, batched and augmented as `cfg` and
    `seed` say (a searched configuration's); the other splits are shared."""
    train = training_batches(bundle.train_unbatched, bundle.sizes["train"], cfg, seed, replicas,
                             bundle.num_classes)
    return dataclasses.replace(bundle, train=train)


def _file_fingerprint(files: dict[str, list[tuple[str, int]]]) -> str:
    digest = hashlib.sha1()
    for split in sorted(files):
        for path, label in files[split]:
            stat = os.stat(path)
            digest.update(f"{split}|{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _load_csv_examples(cfg: DataConfig, seed: int):
    """--labels_csv's splits, with multi-hot float32 labels; class_counts are positives."""
    found = csv_source.load_csv(cfg.dataset, cfg.labels_csv, cfg.validation_fraction,
                                cfg.test_fraction, seed)
    num_labels = len(found.label_names)

    def examples(items):
        paths = [p for p, _ in items]
        hot = np.array([csv_source.multi_hot(k, num_labels) for _, k in items], np.float32)
        return Examples(tf.data.Dataset.from_tensor_slices((paths, hot)), len(items), True)
    splits = {s: examples(items) if items else None for s, items in found.files.items()}
    counts = {s: [sum(1 for _, k in items if c in k) for c in range(num_labels)]
              for s, items in found.files.items() if items}
    return (found.label_names, splits, counts, found.skipped,
            _file_fingerprint(found.files))


def _load_examples(cfg: DataConfig, seed: int):
    if cfg.labels_csv:
        return _load_csv_examples(cfg, seed)
    if is_tfds_name(cfg.dataset):
        class_names, splits, version = tfds_source.load_tfds(cfg)
        fingerprint = json.dumps([cfg.dataset, version, cfg.train_split, cfg.validation_split,
                                  cfg.test_split, cfg.validation_fraction])
        return class_names, {s: Examples(*pair, from_files=False) if pair else None
                             for s, pair in splits.items()}, {}, {}, fingerprint
    folders = folder_source.load_folder(cfg.dataset, cfg.validation_fraction,
                                        cfg.test_fraction, seed)

    def examples(items):
        paths = [p for p, _ in items]
        labels = [label for _, label in items]
        return Examples(tf.data.Dataset.from_tensor_slices((paths, labels)), len(items), True)
    splits = {s: examples(items) if items else None for s, items in folders.files.items()}
    counts = {s: [sum(1 for _, y in items if y == c) for c in range(len(folders.class_names))]
              for s, items in folders.files.items() if items}
    return (folders.class_names, splits, counts, folders.skipped,
            _file_fingerprint(folders.files))


def subset(ds: tf.data.Dataset, size: int, fraction: float, seed: int):
    """A seeded random `fraction` of an unbatched split: (dataset, its size)."""
    if fraction >= 1.0:
        return ds, size
    keep = np.random.default_rng(seed).random(size) < fraction
    mask = tf.constant(keep)
    chosen = ds.enumerate().filter(lambda i, _: mask[i]).map(lambda _, example: example)
    return chosen, int(keep.sum())


def count_labels(ds: tf.data.Dataset, num_classes: int) -> list[int]:
    """Examples per class of an unbatched (image, label) split. Iterating a cached split
    fills its cache, so this costs the decoding the first epoch would otherwise do."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for labels in ds.map(lambda _, label: label).batch(8192).as_numpy_iterator():
        counts += (labels.sum(axis=0).astype(np.int64) if labels.ndim == 2  # multi-hot
                   else np.bincount(labels, minlength=num_classes))
    return counts.tolist()


def own_size(examples: Examples, seed: int) -> int:
    """The median longer side of a seeded sample of the split's images."""
    shape = examples.dataset.element_spec[0].shape
    if not examples.from_files and shape[:2].is_fully_defined():
        return int(max(shape[0], shape[1]))
    sample = examples.dataset.shuffle(min(examples.size, 10000), seed=seed)
    sample = sample.take(OWN_SIZE_SAMPLE).map(lambda image, _: image)
    if examples.from_files:
        sample = sample.map(folder_source.decode_file)
    sides = [max(image.shape[0], image.shape[1]) for image in sample]
    return int(np.median(sides)) if sides else NATIVE_IMAGE_SIZE


def load_data(cfg: DataConfig, seed: int, cache_dir: str, replicas: int = 1,
              native_size: int = NATIVE_IMAGE_SIZE) -> DataBundle:
    """Loads, splits, decodes and batches the data described by `cfg`; --image_size=0
    resizes to the backbone's `native_size` and measures the data's own size."""
    class_names, examples, class_counts, skipped, fingerprint = _load_examples(cfg, seed)
    own = own_size(examples["train"], seed) if cfg.image_size == 0 else None
    if own is not None:
        cfg = dataclasses.replace(cfg, image_size=native_size)
        logging.info("Data %s: images of about %d px; resized to %d px", cfg.dataset, own,
                     cfg.image_size)
    return _bundle(cfg, seed, cache_dir, replicas, class_names, examples, class_counts,
                   skipped, fingerprint, own, native_size)


def at_image_size(bundle: DataBundle, cfg: DataConfig, seed: int, cache_dir: str,
                  replicas: int = 1) -> DataBundle:
    """The same examples resized to `cfg.image_size` (a searched resolution), its training
    split shaped by `cfg` and `seed` (decoded again only when the size differs)."""
    if cfg.image_size == bundle.image_size:
        return with_train_split(bundle, cfg, seed, replicas)
    return _bundle(cfg, seed, cache_dir, replicas, bundle.class_names, bundle.sources,
                   bundle.class_counts, bundle.skipped, bundle.fingerprint, bundle.own_size,
                   bundle.native_size)


def _bundle(cfg: DataConfig, seed: int, cache_dir: str, replicas: int, class_names,
            examples: dict, class_counts, skipped, fingerprint: str, own,
            native_size: int = NATIVE_IMAGE_SIZE) -> DataBundle:
    sizes = {s: e.size for s, e in examples.items() if e is not None}
    decoded = {s: _cached(_decoded(e, cfg.image_size), s, e.size, cfg, cache_dir)
               for s, e in examples.items() if e is not None}
    batch = {s: replica_safe_batch_size(cfg.batch_size, n, replicas) for s, n in sizes.items()}
    if not class_counts:  # TFDS does not record them
        class_counts = {s: count_labels(ds, len(class_names)) for s, ds in decoded.items()}
    logging.info("Data %s: %d classes, split sizes %s, skipped %s", cfg.dataset,
                 len(class_names), sizes, skipped or "none")
    return DataBundle(
        class_names=class_names,
        train=training_pipeline(decoded["train"], cfg, seed, batch["train"], len(class_names)),
        validation=batched(decoded["validation"], batch["validation"])
        if "validation" in decoded else None,
        test=batched(decoded["test"], batch["test"]) if "test" in decoded else None,
        sizes=sizes, class_counts=class_counts, skipped=skipped,
        train_unbatched=decoded["train"], fingerprint=fingerprint,
        image_size=cfg.image_size, own_size=own, sources=examples, native_size=native_size)
