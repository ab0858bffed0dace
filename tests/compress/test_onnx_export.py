import keras
import numpy as np
import onnx
import pytest
from conftest import make_config

from tftransfer.compress import onnx_export
from tftransfer.model import classifier as model_lib


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_a_small_model_runs_any_batch_like_keras(small_model, tmp_path):
    path = onnx_export.write_model(small_model, 8, str(tmp_path))
    assert path == str(tmp_path / "classifier.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == [onnx_export.INPUT_NAME]
    predictor = onnx_export.RuntimePredictor(path)
    images = np.random.default_rng(0).random((7, 8, 8, 3), dtype=np.float32)
    expected = small_model.predict(images, verbose=0)
    for batch in (7, 1, 3):
        np.testing.assert_allclose(predictor(images[:batch]), expected[:batch], atol=1e-5)


def test_the_hub_classifier_converts_with_its_backbone_frozen_in(tmp_path, tiny_hub_dir):
    cfg = make_config(tmp_path, dataset="mnist", hub_handle=tiny_hub_dir, fine_tune_depth=1)
    keras.utils.set_random_seed(1)
    classifier = model_lib.build_model(cfg, 4)
    size = cfg.data.image_size
    predictor = onnx_export.RuntimePredictor(
        onnx_export.write_model(classifier, size, str(tmp_path / "onnx")))
    images = np.random.default_rng(1).random((5, size, size, 3), dtype=np.float32)
    probabilities = predictor(images)
    assert probabilities.shape == (5, 4)
    np.testing.assert_allclose(probabilities, classifier.predict(images, verbose=0), atol=1e-5)
