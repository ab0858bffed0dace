"""Image folders as a data source: listing, seeded stratified splits, and a decode scan.

Layouts: `root/<class>/<image>` (split here, stratified and seeded) or
`root/{train,validation,test}/<class>/<image>` (the given splits are kept; without
`validation/`, --validation_fraction of train is held out as for an unsplit folder).
Files TensorFlow cannot decode are skipped and counted before training starts.
"""
from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.config.errors import DataError
from tftransfer.config.run_config import IMAGE_EXTENSIONS

SPLIT_FOLDERS = ("train", "validation", "test")


@dataclasses.dataclass
class FolderSplits:
    class_names: list[str]
    files: dict[str, list[tuple[str, int]]]      # split -> [(path, label)]
    skipped: dict[str, int]                       # reason -> count
    skipped_examples: list[str]                   # a few skipped paths, for the log


def _subdirs(path: str) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _list_class_files(root: str, class_names: list[str], skipped: collections.Counter):
    files = []
    for label, name in enumerate(class_names):
        folder = os.path.join(root, name)
        entries = sorted(e.path for e in os.scandir(folder) if e.is_file()
                         and not e.name.startswith(".")) if os.path.isdir(folder) else []
        images = [p for p in entries if p.lower().endswith(IMAGE_EXTENSIONS)]
        skipped["not an image file extension"] += len(entries) - len(images)
        files.extend((p, label) for p in images)
    return files


def stratified_split(files, validation_fraction, test_fraction, seed):
    by_label = collections.defaultdict(list)
    for item in files:
        by_label[item[1]].append(item)
    rng = np.random.default_rng(seed)
    splits = {"train": [], "validation": [], "test": []}
    for label in sorted(by_label):
        items = by_label[label]
        order = rng.permutation(len(items))
        n_test = int(round(len(items) * test_fraction))
        n_val = int(round(len(items) * validation_fraction))
        picked = [items[i] for i in order]
        splits["test"] += picked[:n_test]
        splits["validation"] += picked[n_test:n_test + n_val]
        splits["train"] += picked[n_test + n_val:]
    return splits


def _decodable(paths: list[str]) -> set[str]:
    """Paths TensorFlow decodes; the rest raise inside the map and are dropped."""
    def check(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return path, tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(check, tf.data.AUTOTUNE).ignore_errors()
    return {p.decode() for p, _ in ds.as_numpy_iterator()}


def drop_undecodable(files, skipped, examples):
    good = _decodable([p for p, _ in files]) if files else set()
    bad = [p for p, _ in files if p not in good]
    skipped["corrupt or unsupported image"] += len(bad)
    examples.extend(bad[:5])
    return [item for item in files if item[0] in good]


def _check_classes(class_names, splits):
    if len(class_names) < 2:
        raise DataError(f"need at least 2 class folders, found {len(class_names)}: "
                        f"{class_names}")
    counts = collections.Counter(label for _, label in splits["train"])
    empty = [n for i, n in enumerate(class_names) if counts[i] == 0]
    if empty:
        raise DataError(f"class folder(s) without usable training images: {empty}")


def load_folder(root: str, validation_fraction: float, test_fraction: float,
                seed: int) -> FolderSplits:
    pre_split = os.path.isdir(os.path.join(root, "train"))
    class_root = os.path.join(root, "train") if pre_split else root
    class_names = _subdirs(class_root)
    skipped, examples = collections.Counter(), []
    if pre_split:
        unknown = {s: set(_subdirs(os.path.join(root, s))) - set(class_names)
                   for s in SPLIT_FOLDERS[1:] if os.path.isdir(os.path.join(root, s))}
        for split, names in unknown.items():
            if names:
                raise DataError(f"{split}/ has classes missing from train/: {sorted(names)}")
        splits = {s: _list_class_files(os.path.join(root, s), class_names, skipped)
                  if os.path.isdir(os.path.join(root, s)) else [] for s in SPLIT_FOLDERS}
    else:
        splits = {s: [] for s in SPLIT_FOLDERS}
        if len(class_names) >= 2:
            listed = _list_class_files(root, class_names, skipped)
            listed = drop_undecodable(listed, skipped, examples)
            splits = stratified_split(listed, validation_fraction, test_fraction, seed)
    if pre_split:
        splits = {s: drop_undecodable(f, skipped, examples) for s, f in splits.items()}
        if not splits["validation"] and validation_fraction > 0:
            held = stratified_split(splits["train"], validation_fraction, 0.0, seed)
            splits.update(train=held["train"], validation=held["validation"])
            logging.info("%s has no validation/: %d of train/'s images held out for it "
                         "(--validation_fraction=%g)", root, len(held["validation"]),
                         validation_fraction)
    _check_classes(class_names, splits)
    skipped = collections.Counter({reason: n for reason, n in skipped.items() if n})
    if skipped:
        logging.warning("Skipped %d file(s) in %s: %s (e.g. %s)", sum(skipped.values()), root,
                        dict(skipped), examples[:3])
    return FolderSplits(class_names, splits, dict(skipped), examples)


def decode_file(path: tf.Tensor) -> tf.Tensor:
    """Any supported encoding, grey/RGBA/16-bit -> uint8 RGB [H, W, 3]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image
