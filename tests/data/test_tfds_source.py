"""TFDS label features tfds_source refuses in one line (a real dataset: tests/data/test_pipeline.py)."""
import types

import pytest
import tensorflow_datasets as tfds

from tftransfer.config.errors import DataError
from tftransfer.data import tfds_source


def _builder(label_feature):
    info = types.SimpleNamespace(supervised_keys=("image", "label"),
                                 features={"image": tfds.features.Image(),
                                           "label": label_feature})
    return types.SimpleNamespace(name="fake", info=info)


def test_a_class_label_is_the_supervised_label():
    labels = tfds.features.ClassLabel(names=["a", "b"])
    assert tfds_source._supervised_keys(_builder(labels)) == ("image", "label")


def test_a_sequence_of_class_labels_is_refused_as_multi_label():
    labels = tfds.features.Sequence(tfds.features.ClassLabel(names=["a", "b"]))
    with pytest.raises(DataError, match="'label' is a sequence of labels .multi-label.: "
                                        "list its images in a --labels_csv instead"):
        tfds_source._supervised_keys(_builder(labels))
