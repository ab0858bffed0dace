import keras
import numpy as np
import pytest

from tftransfer.model import tta


def _position_sensitive(image_size=8, classes=3):
    """Softmax of a dense layer on the raw pixels: mirroring an image changes it."""
    images = keras.Input((image_size, image_size, 3))
    logits = keras.layers.Dense(classes)(keras.layers.Flatten()(images))
    return keras.Model(images, keras.layers.Softmax()(logits))


def test_flip_averages_the_image_and_its_mirror():
    keras.utils.set_random_seed(0)
    model = _position_sensitive()
    images = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    averaged = tta.with_tta(model, "flip").predict(images, verbose=0)
    plain, mirrored = model.predict(images, verbose=0), model.predict(images[:, :, ::-1],
                                                                      verbose=0)
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, atol=1e-6)
    assert np.abs(averaged - plain).max() > 1e-3
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-5)
    # Mirroring the input leaves the average unchanged.
    np.testing.assert_allclose(tta.with_tta(model, "flip").predict(images[:, :, ::-1],
                                                                   verbose=0),
                               averaged, atol=1e-6)


def test_none_is_the_model_itself_and_other_modes_are_refused():
    model = _position_sensitive()
    assert tta.with_tta(model, "none") is model
    assert tta.with_tta(model, "flip").count_params() == model.count_params()  # shared
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        tta.with_tta(model, "five_crop")
