import keras
import numpy as np
import pytest
from conftest import make_config

from tftransfer.compress import tflite
from tftransfer.evaluate import temperature as temperature_fit
from tftransfer.model import classifier as model_lib, temperature_layer as temperature

IMAGES = np.random.default_rng(0).random((6, 24, 24, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory, tiny_hub_dir):
    """A tiny classifier with large head weights, so its probabilities are far from flat."""
    keras.utils.set_random_seed(0)
    cfg = make_config(tmp_path_factory.mktemp("t"), dataset="unused", hub_handle=tiny_hub_dir)
    classifier = model_lib.build_model(cfg, num_classes=3)
    logits = classifier.head.get_layer(model_lib.LOGITS)
    logits.kernel.assign(logits.kernel.numpy() * 40.0)
    return classifier


def test_the_scaled_classifier_returns_the_tempered_probabilities(trained_like):
    before = trained_like.predict(IMAGES, verbose=0)
    assert before.max() > 0.9
    scaled = temperature.with_temperature(trained_like, 2.5)
    after = scaled.predict(IMAGES, verbose=0)
    np.testing.assert_allclose(after, temperature_fit.apply_temperature(before, 2.5),
                               atol=1e-5)
    assert after.max() < before.max()
    np.testing.assert_array_equal(after.argmax(axis=1), before.argmax(axis=1))
    assert temperature.temperature_of(scaled) == pytest.approx(2.5)
    assert temperature.temperature_of(trained_like) == 1.0
    assert len(scaled.trainable_weights) == len(trained_like.trainable_weights)
    np.testing.assert_allclose(trained_like.predict(IMAGES, verbose=0), before)  # untouched


def test_clones_and_configs_keep_the_temperature(trained_like):
    scaled = temperature.with_temperature(trained_like, 0.5)
    expected = scaled.predict(IMAGES, verbose=0)
    np.testing.assert_allclose(scaled.clone().predict(IMAGES, verbose=0), expected, atol=1e-6)
    rebuilt = model_lib.TransferClassifier.from_config(scaled.get_config())
    assert temperature.temperature_of(rebuilt) == pytest.approx(0.5)
    rebuilt.set_weights(scaled.get_weights())
    np.testing.assert_allclose(rebuilt.predict(IMAGES, verbose=0), expected, atol=1e-6)


def test_the_float_tflite_model_returns_the_tempered_probabilities(trained_like, tmp_path):
    scaled = temperature.with_temperature(trained_like, 3.0)
    path = tflite.write_model(scaled, "float", str(tmp_path))
    np.testing.assert_allclose(tflite.InterpreterPredictor(path)(IMAGES),
                               scaled.predict(IMAGES, verbose=0), atol=1e-5)


def test_a_bad_temperature_or_a_second_scaling_is_refused(trained_like):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        temperature.Temperature(0.0)
    scaled = temperature.with_temperature(trained_like, 2.0)
    with pytest.raises(ValueError, match="already temperature-scaled"):
        temperature.with_temperature(scaled, 2.0)


def test_the_scaled_head_keeps_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = temperature.Temperature(2.0)
        out = layer(np.ones((2, 3), np.float32) * 4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert "float32" in str(out.dtype)
    np.testing.assert_allclose(np.asarray(out), 2.0)
