"""Prepare the real Fashion-MNIST as a stock TFDS dataset, offline.

Debian's `dataset-fashion-mnist` ships the original IDX files, but re-gzipped,
so their checksums differ from the ones TFDS registered for the upstream
archives. The decompressed data is the same, so we let TFDS's own
`fashion_mnist` builder do all the work and only hand it the local archives
through its download cache. The result is exactly what `tfds.load` would have
prepared after a real download, and later `tfds.load("fashion_mnist",
data_dir=...)` calls just reuse it.
"""

import gzip
import logging
import os
import struct
import tempfile
import zlib
from pathlib import Path

import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import resource as tfds_resource

DATASET_NAME = "fashion_mnist"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

_IMAGE_SIDE = 28
_IMAGES_MAGIC = 2051  # IDX header: magic, count, rows, cols (big-endian uint32)
_LABELS_MAGIC = 2049  # IDX header: magic, count
# file name -> (IDX magic number, number of items)
_SOURCE_FILES = {
    "train-images-idx3-ubyte.gz": (_IMAGES_MAGIC, 60000),
    "train-labels-idx1-ubyte.gz": (_LABELS_MAGIC, 60000),
    "t10k-images-idx3-ubyte.gz": (_IMAGES_MAGIC, 10000),
    "t10k-labels-idx1-ubyte.gz": (_LABELS_MAGIC, 10000),
}

logger = logging.getLogger(__name__)


def prepare_fashion_mnist(data_dir: str, source_dir: str = DEBIAN_DIR) -> str:
    """Prepare `fashion_mnist` in `data_dir` from local IDX files.

    Idempotent: returns at once if the dataset is already prepared there.
    Returns the TFDS dataset name to pass to `tfds.load`.
    """
    builder = tfds.builder(DATASET_NAME, data_dir=data_dir)
    if builder.is_prepared():
        logger.info("%s already prepared in %s", DATASET_NAME, builder.data_dir)
        return DATASET_NAME

    _validate_source_files(Path(source_dir))
    logger.info("Preparing %s from %s into %s", DATASET_NAME, source_dir, builder.data_dir)
    # The download cache (and its extracted copies) is only needed while
    # generating, so it lives in a temporary directory, not in data_dir.
    with tempfile.TemporaryDirectory(prefix="fashion_mnist_dl_") as download_dir:
        _seed_download_cache(builder, Path(download_dir), Path(source_dir))
        builder.download_and_prepare(
            download_dir=download_dir,
            download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        )
    logger.info("Prepared %s in %s", DATASET_NAME, builder.data_dir)
    return DATASET_NAME


def _validate_source_files(source_dir: Path) -> None:
    """Check that every IDX archive exists and has the expected header and size."""
    missing = [name for name in _SOURCE_FILES if not (source_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files {missing} not found in {source_dir}; "
            "install them with `apt-get install dataset-fashion-mnist`."
        )
    for name, (magic, count) in _SOURCE_FILES.items():
        _validate_idx_file(source_dir / name, magic, count)


def _validate_idx_file(path: Path, magic: int, count: int) -> None:
    """Decompress `path` fully (so gzip checks its CRC) and check its IDX header."""
    expected_header = struct.pack(">II", magic, count)
    item_size = 1
    if magic == _IMAGES_MAGIC:
        expected_header += struct.pack(">II", _IMAGE_SIDE, _IMAGE_SIDE)
        item_size = _IMAGE_SIDE * _IMAGE_SIDE
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(len(expected_header))
            payload_size = sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
    except (OSError, EOFError, zlib.error) as error:
        raise RuntimeError(
            f"Corrupt Fashion-MNIST file {path} ({error}); reinstall it with "
            "`apt-get install --reinstall dataset-fashion-mnist`."
        ) from error
    if header != expected_header or payload_size != count * item_size:
        raise RuntimeError(
            f"Unexpected Fashion-MNIST file {path}: IDX header {header.hex()} and "
            f"{payload_size} data bytes, expected header {expected_header.hex()} and "
            f"{count * item_size} bytes; reinstall `dataset-fashion-mnist`."
        )


def _seed_download_cache(builder, download_dir: Path, source_dir: Path) -> None:
    """Link each local archive where TFDS caches the matching upstream download.

    TFDS trusts a cached file whose name embeds the registered checksum, so the
    builder's stock `_split_generators` then uses our files without
    downloading. The checksums differ only because Debian re-gzipped the files.
    """
    for url, url_info in builder.url_infos.items():
        cached_path = download_dir / builder.name / tfds_resource.get_dl_fname(
            url, url_info.checksum
        )
        cached_path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source_dir.resolve() / url_info.filename, cached_path)
        tfds_resource.write_info_file(
            url=url,
            path=cached_path,
            dataset_name=builder.name,
            original_fname=url_info.filename,
            url_info=url_info,
        )
