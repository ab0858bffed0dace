"""TFDS datasets as a data source, with one-line errors for names, splits and downloads."""
from __future__ import annotations

import tensorflow as tf
import tensorflow_datasets as tfds

from tftransfer.config.errors import DataError, first_line
from tftransfer.config.run_config import DataConfig


def _builder(cfg: DataConfig):
    try:
        builder = tfds.builder(cfg.dataset, data_dir=cfg.data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"unknown TFDS dataset '{cfg.dataset}' (and no such folder)") from None
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except Exception as e:  # network, checksum or disk: all end the run the same way
            raise DataError(
                f"TFDS dataset '{cfg.dataset}' is not prepared in {builder.data_dir} "
                f"and preparing it failed: {first_line(e)}") from None
    return builder


def _supervised_keys(builder) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2:
        raise DataError(f"TFDS dataset '{builder.name}' has no (image, label) supervised keys")
    image_key, label_key = keys
    if not hasattr(builder.info.features[label_key], "names"):  # a Sequence forwards it
        raise DataError(f"TFDS dataset '{builder.name}' label '{label_key}' is not a class label")
    return image_key, label_key


def _split_size(builder, split: str, flag: str) -> int:
    try:
        size = builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError) as e:
        known = ", ".join(builder.info.splits.keys())
        raise DataError(f"--{flag}: invalid split '{split}' for {builder.name} "
                        f"(splits: {known}): {e}") from None
    if size == 0:
        raise DataError(f"--{flag}: split '{split}' of {builder.name} selects no examples")
    return size


def _is_multi_label(feature) -> bool:
    """A Sequence(ClassLabel) label: each example has a set of class indices."""
    return isinstance(feature, tfds.features.Sequence) and isinstance(
        feature.feature, tfds.features.ClassLabel)


def load_tfds(cfg: DataConfig):
    """Returns (class_names, {split: (dataset, size) or None}, dataset version). A
    Sequence(ClassLabel) label becomes a float32 multi-hot vector."""
    builder = _builder(cfg)
    _, label_key = _supervised_keys(builder)
    class_names = list(builder.info.features[label_key].names)
    multi_label = _is_multi_label(builder.info.features[label_key])

    def multi_hot(image, indices):
        hot = tf.minimum(tf.reduce_sum(tf.one_hot(indices, len(class_names)), axis=0), 1.0)
        return image, tf.ensure_shape(hot, [len(class_names)])

    def read(split: str) -> tf.data.Dataset:
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        return ds.map(multi_hot) if multi_label else ds

    train_size = _split_size(builder, cfg.train_split, "train_split")
    train = read(cfg.train_split)
    if cfg.validation_split:
        val_size = _split_size(builder, cfg.validation_split, "validation_split")
        validation = (read(cfg.validation_split), val_size)
    else:
        # TFDS shuffles records when it prepares a dataset, so a tail holdout is a random one.
        val_size = int(round(train_size * cfg.validation_fraction))
        validation = (train.take(val_size), val_size) if val_size else None
        train, train_size = train.skip(val_size), train_size - val_size
    test = None
    if cfg.test_split:
        test_size = _split_size(builder, cfg.test_split, "test_split")
        test = (read(cfg.test_split), test_size)
    splits = {"train": (train, train_size), "validation": validation, "test": test}
    return class_names, splits, str(builder.info.version)
