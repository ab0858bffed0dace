"""TFDS label features (a real single-label dataset: tests/data/test_pipeline.py)."""
import pytest
from tiny_tfds import NAMES, TinyMultiLabel

from tftransfer.config.run_config import DataConfig
from tftransfer.data import pipeline, tfds_source

@pytest.fixture(scope="module")
def tiny_multi_label_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds_multi"))
    TinyMultiLabel(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_a_sequence_label_becomes_multi_hot(tiny_multi_label_dir, tmp_path):
    cfg = DataConfig(dataset="tiny_multi_label", data_dir=tiny_multi_label_dir,
                     validation_fraction=0.25, image_size=8, batch_size=4, augment=False)
    names, splits, _ = tfds_source.load_tfds(cfg)
    assert names == NAMES
    test, size = splits["test"]
    labels = [label.tolist() for _, label in test.as_numpy_iterator()]
    assert size == 4
    # TFDS shuffles the records as it prepares them; a repeated index counts once.
    assert sorted(labels) == sorted([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1]])
    bundle = pipeline.load_data(cfg, seed=0, cache_dir=str(tmp_path))
    assert bundle.multi_label and bundle.sizes == {"train": 9, "validation": 3, "test": 4}
    assert bundle.class_counts["test"] == [2, 1, 2]
