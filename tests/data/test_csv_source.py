"""--labels_csv parsing and splitting (data/csv_source.py)."""
import os

import numpy as np
import pytest
from PIL import Image

from tftransfer.config.errors import DataError
from tftransfer.data import csv_source


def _image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(path)


def _csv(tmp_path, text):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("", "labels.csv line 1: the header must be 'filename,labels', found nothing"),
    ("file,tags\na.png,x\n", "labels.csv line 1: the header must be 'filename,labels', "
                             "found file,tags"),
    ("filename,labels\na.png,x\nb.png, \n", "labels.csv line 3: b.png has no labels"),
    ("filename,labels\na.png,x,y\n", "labels.csv line 2: expected 'filename,labels', "
                                     "found 'a.png,x,y'"),
    ("filename,labels\n,x\n", "labels.csv line 2: expected 'filename,labels', found ',x'"),
    ("filename,labels\n", "labels.csv lists no images"),
])
def test_bad_csv_is_a_one_line_error_naming_the_line(tmp_path, text, message):
    with pytest.raises(DataError) as raised:
        csv_source.read_rows(_csv(tmp_path, text))
    assert str(raised.value) == f"--labels_csv: {message}"


def test_rows_keep_their_line_and_sorted_unique_labels(tmp_path):
    rows = csv_source.read_rows(_csv(tmp_path, "Filename,Labels\n\na.png,dog cat dog\n"))
    assert rows == [csv_source.Row(3, "a.png", ("cat", "dog"))]


def test_random_split_is_seeded_and_counts_missing_and_corrupt_files(tmp_path):
    lines = ["filename,labels"]
    for i in range(20):
        _image(str(tmp_path / "img" / f"{i}.png"))
        lines.append(f"img/{i}.png,{'a b' if i % 2 else 'c'}")
    (tmp_path / "img" / "bad.png").write_bytes(b"not an image")
    lines += ["img/bad.png,a", "img/gone.png,z"]
    csv_path = _csv(tmp_path, "\n".join(lines) + "\n")
    found = csv_source.load_csv(str(tmp_path), csv_path, 0.2, 0.2, seed=1)
    assert found.label_names == ["a", "b", "c", "z"]  # every label of the file
    assert found.skipped == {"listed in --labels_csv but missing": 1,
                             "corrupt or unsupported image": 1}
    sizes = {s: len(items) for s, items in found.files.items()}
    assert sizes == {"train": 12, "validation": 4, "test": 4}
    every = sorted(p for items in found.files.values() for p, _ in items)
    assert len(set(every)) == 20
    again = csv_source.load_csv(str(tmp_path), csv_path, 0.2, 0.2, seed=1)
    assert again.files == found.files
    other = csv_source.load_csv(str(tmp_path), csv_path, 0.2, 0.2, seed=2)
    assert other.files["test"] != found.files["test"]
    labels = dict(p_k for items in found.files.values() for p_k in items)
    assert labels[str(tmp_path / "img" / "1.png")] == (0, 1)
    assert labels[str(tmp_path / "img" / "2.png")] == (2,)


def test_split_folders_come_from_the_first_path_component(tmp_path):
    lines = ["filename,labels"]
    for split, count in (("train", 6), ("test", 2)):
        for i in range(count):
            _image(str(tmp_path / split / f"{i}.png"))
            lines.append(f"{split}/{i}.png,x")
    found = csv_source.load_csv(str(tmp_path), _csv(tmp_path, "\n".join(lines)), 0.5, 0.9, 0)
    sizes = {s: len(items) for s, items in found.files.items()}
    assert sizes == {"train": 3, "validation": 3, "test": 2}  # validation held out of train
    assert all("/test/" in p for p, _ in found.files["test"])


def test_a_file_outside_the_split_folders_names_its_line(tmp_path):
    _image(str(tmp_path / "train" / "0.png"))
    _image(str(tmp_path / "other" / "1.png"))
    csv_path = _csv(tmp_path, "filename,labels\ntrain/0.png,x\nother/1.png,y\n")
    with pytest.raises(DataError, match=r"labels.csv line 3: other/1.png is not under train/"):
        csv_source.load_csv(str(tmp_path), csv_path, 0.1, 0.1, 0)


def test_multi_hot():
    assert csv_source.multi_hot((0, 2), 4) == [1.0, 0.0, 1.0, 0.0]
