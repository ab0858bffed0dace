"""Tests for preparing the real Fashion-MNIST from Debian's files as a TFDS dataset."""

import gzip
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from tftransfer.assets.fashion_mnist import DEBIAN_DIR, prepare_fashion_mnist

SOURCE_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


@pytest.fixture(scope="module")
def data_dir(fashion_mnist_dir):
    return fashion_mnist_dir


def test_info_has_stock_splits_and_class_names(data_dir):
    info = tfds.builder("fashion_mnist", data_dir=data_dir).info
    assert info.splits["train"].num_examples == 60000
    assert info.splits["test"].num_examples == 10000
    names = info.features["label"].names
    assert len(names) == 10
    assert names[0] == "T-shirt/top"
    assert names[-1] == "Ankle boot"
    assert Path(data_dir, "fashion_mnist", str(info.version), "dataset_info.json").is_file()


def test_load_yields_28x28x1_uint8_images_with_valid_labels(data_dir):
    dataset = tfds.load("fashion_mnist", split="train[:90%]", data_dir=data_dir, as_supervised=True)
    assert int(dataset.cardinality()) == 54000
    for image, label in dataset.take(64):
        assert image.shape == (28, 28, 1)
        assert image.dtype.name == "uint8"
        assert 0 <= int(label) < 10


@pytest.mark.e2e
def test_load_works_in_fresh_process_without_network(data_dir):
    script = textwrap.dedent(
        f"""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network access attempted")

        socket.getaddrinfo = refuse
        socket.socket.connect = refuse

        import tensorflow_datasets as tfds
        dataset = tfds.load("fashion_mnist", split="test[:100]", data_dir={data_dir!r})
        print("examples", sum(1 for _ in dataset))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "examples 100" in result.stdout


def test_second_call_is_fast_and_keeps_prepared_files(data_dir):
    version_dir = Path(data_dir, "fashion_mnist", "3.0.1")
    before = {path.name: path.stat().st_mtime_ns for path in version_dir.iterdir()}
    start = time.monotonic()
    assert prepare_fashion_mnist(data_dir) == "fashion_mnist"
    assert time.monotonic() - start < 5
    assert {path.name: path.stat().st_mtime_ns for path in version_dir.iterdir()} == before


def test_missing_source_dir_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        prepare_fashion_mnist(str(tmp_path / "tfds"), source_dir=str(tmp_path / "missing"))
    assert not (tmp_path / "tfds" / "fashion_mnist" / "3.0.1").exists()


def _corrupt_images_archive(kind: str) -> bytes:
    if kind == "wrong-header":  # a labels-file magic number in the images file
        return gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 100)
    return Path(DEBIAN_DIR, SOURCE_FILES[0]).read_bytes()[:4096]  # truncated


@pytest.mark.parametrize(
    "kind, message", [("wrong-header", "Unexpected"), ("truncated", "Corrupt")]
)
def test_corrupt_source_file_gives_clear_error(tmp_path, kind, message):
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    (source_dir / SOURCE_FILES[0]).write_bytes(_corrupt_images_archive(kind))
    for name in SOURCE_FILES[1:]:
        (source_dir / name).symlink_to(Path(DEBIAN_DIR, name))
    with pytest.raises(RuntimeError, match=message):
        prepare_fashion_mnist(str(tmp_path / "tfds"), source_dir=str(source_dir))
