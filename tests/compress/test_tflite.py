import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.compress import tflite


def _class_ordered_split(per_class=100, classes=3):
    """uint8 images whose every pixel is 10 * label + index-in-class % 10, class by class."""
    labels = np.repeat(np.arange(classes), per_class)
    values = 10 * labels + np.tile(np.arange(per_class) % 10, classes)
    images = np.broadcast_to(values[:, None, None, None], (len(labels), 4, 4, 3))
    return tf.data.Dataset.from_tensor_slices((images.astype(np.uint8), labels))


def test_representative_images_span_a_class_ordered_split():
    split = _class_ordered_split()
    images = tflite.representative_images(split, 300, 30, seed=1)
    assert images.shape == (30, 4, 4, 3) and images.dtype == np.float32
    labels = (np.round(images[:, 0, 0, 0] * 255) // 10).astype(int)
    assert set(labels) == {0, 1, 2}
    np.testing.assert_array_equal(images, tflite.representative_images(split, 300, 30, seed=1))
    assert not np.array_equal(images, tflite.representative_images(split, 300, 30, seed=2))
    assert len(tflite.representative_images(split, 300, 500, seed=1)) == 300


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_float_variant_runs_any_batch_like_keras(small_model, tmp_path):
    path = tflite.write_model(small_model, "float", str(tmp_path))
    predictor = tflite.InterpreterPredictor(path)
    images = np.random.default_rng(0).random((7, 8, 8, 3), dtype=np.float32)
    expected = small_model.predict(images, verbose=0)
    for batch in (7, 1, 3):  # the input is resized when the batch changes
        np.testing.assert_allclose(predictor(images[:batch]), expected[:batch], atol=1e-5)


def test_a_flip_averaged_model_converts_with_its_average(small_model, tmp_path):
    """--export_tta: the TFLite model built from the wrapper averages as the export does."""
    from tftransfer.model import tta

    averaged = tta.for_export(small_model, export_tta=True)
    predictor = tflite.InterpreterPredictor(tflite.write_model(averaged, "float",
                                                               str(tmp_path)))
    images = np.random.default_rng(1).random((5, 8, 8, 3), dtype=np.float32)
    expected = (small_model.predict(images, verbose=0)
                + small_model.predict(images[:, :, ::-1], verbose=0)) / 2
    assert np.abs(expected - small_model.predict(images, verbose=0)).max() > 1e-4
    np.testing.assert_allclose(predictor(images), expected, atol=1e-5)


def test_conversion_logs_rather_than_prints_the_keras_export_listing(small_model, capsys):
    keras.config.enable_interactive_logging()
    tflite.convert(small_model, "float")
    assert "Captures" not in capsys.readouterr().out
    assert keras.config.is_interactive_logging_enabled()  # restored for fit's progress


def test_int8_variant_is_integer_inside_with_float_ends(small_model, tmp_path):
    calibration = np.random.default_rng(1).random((16, 8, 8, 3), dtype=np.float32)
    predictor = tflite.InterpreterPredictor(
        tflite.write_model(small_model, "int8", str(tmp_path), calibration))
    types = predictor.tensor_types()
    assert types["int8"] > 0 and types["float32"] == 2  # the input and the output
    images = calibration[:4]
    np.testing.assert_allclose(predictor(images), small_model.predict(images, verbose=0),
                               atol=0.05)
