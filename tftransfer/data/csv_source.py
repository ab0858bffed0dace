"""A multi-label data source (--labels_csv): image paths and their labels from a CSV.

The CSV has the header `filename,labels`; each filename is relative to the --dataset folder
and the labels are separated by spaces. The label vocabulary is the sorted set of every
label in the file. A folder with a `train/` sub-folder keeps the splits the filenames'
first path component names (train, validation, test); otherwise the images are split at
random, seeded, by --validation_fraction and --test_fraction. Listed files that are missing
or that TensorFlow cannot decode are skipped and counted, as folder_source does.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import os

from absl import logging

from tftransfer.config.errors import DataError
from tftransfer.data import folder_source

HEADER = ["filename", "labels"]


@dataclasses.dataclass(frozen=True)
class Row:
    line: int
    filename: str
    labels: tuple[str, ...]


@dataclasses.dataclass
class CsvSplits:
    label_names: list[str]
    files: dict[str, list[tuple[str, tuple[int, ...]]]]   # split -> [(path, label indices)]
    skipped: dict[str, int]                               # reason -> count


def read_rows(csv_path: str) -> list[Row]:
    """The CSV's rows; DataError naming the line for a bad header, row or empty labels."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    where = os.path.basename(csv_path)
    if not rows or [c.strip().lower() for c in rows[0]] != HEADER:
        raise DataError(f"--labels_csv: {where} line 1: the header must be "
                        f"'{','.join(HEADER)}', found {','.join(rows[0]) if rows else 'nothing'}")
    parsed = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 2 or not cells[0].strip():
            raise DataError(f"--labels_csv: {where} line {line}: expected 'filename,labels', "
                            f"found {','.join(cells)!r}")
        labels = tuple(sorted(set(cells[1].split())))
        if not labels:
            raise DataError(f"--labels_csv: {where} line {line}: {cells[0]} has no labels")
        parsed.append(Row(line, cells[0].strip(), labels))
    if not parsed:
        raise DataError(f"--labels_csv: {where} lists no images")
    return parsed


def _split_of(row: Row, where: str) -> str:
    first = row.filename.replace("\\", "/").split("/")[0]
    if first not in folder_source.SPLIT_FOLDERS:
        raise DataError(f"--labels_csv: {where} line {row.line}: {row.filename} is not under "
                        f"{', '.join(s + '/' for s in folder_source.SPLIT_FOLDERS)} (the "
                        f"folder has a train/ sub-folder, so the first folder names the split)")
    return first


def _random_split(files, validation_fraction: float, test_fraction: float, seed: int):
    """folder_source's seeded split, with every image in one stratum (an image's labels
    are a set, not one class)."""
    indexed = folder_source.stratified_split([(i, 0) for i in range(len(files))],
                                              validation_fraction, test_fraction, seed)
    return {split: [files[i] for i, _ in sorted(items)] for split, items in indexed.items()}


def load_csv(root: str, csv_path: str, validation_fraction: float, test_fraction: float,
             seed: int) -> CsvSplits:
    rows = read_rows(csv_path)
    label_names = sorted({label for row in rows for label in row.labels})
    index = {name: k for k, name in enumerate(label_names)}
    pre_split = os.path.isdir(os.path.join(root, "train"))
    where = os.path.basename(csv_path)
    skipped, examples = collections.Counter(), []
    listed = collections.defaultdict(list)
    for row in rows:
        path = os.path.join(root, row.filename)
        if not os.path.isfile(path):
            skipped["listed in --labels_csv but missing"] += 1
            examples.append(path)
            continue
        split = _split_of(row, where) if pre_split else "train"
        listed[split].append((path, tuple(index[name] for name in row.labels)))
    splits = {s: folder_source.drop_undecodable(listed[s], skipped, examples)
              for s in folder_source.SPLIT_FOLDERS}
    if not pre_split:
        splits = _random_split(splits["train"], validation_fraction, test_fraction, seed)
    elif not splits["validation"] and validation_fraction > 0:
        held = _random_split(splits["train"], validation_fraction, 0.0, seed)
        splits.update(train=held["train"], validation=held["validation"])
    if not splits["train"]:
        raise DataError(f"--labels_csv: {where} leaves no usable training images")
    skipped = {reason: n for reason, n in skipped.items() if n}
    if skipped:
        logging.warning("Skipped %d file(s) listed in %s: %s (e.g. %s)", sum(skipped.values()),
                        where, skipped, examples[:3])
    return CsvSplits(label_names, splits, skipped)


def multi_hot(indices: tuple[int, ...], num_labels: int) -> list[float]:
    hot = [0.0] * num_labels
    for k in indices:
        hot[k] = 1.0
    return hot
