import numpy as np
import pytest
import tensorflow as tf

from tftransfer.data import preprocess


@pytest.mark.parametrize("side, antialiased", [(64, True), (10, False)])
def test_only_shrinking_is_antialiased(side, antialiased):
    image = tf.random.uniform([side, side, 3], 0, 255, tf.int32, seed=1)
    image = tf.cast(image, tf.uint8)
    dynamic = tf.function(lambda x: preprocess.resized(x, 16), input_signature=[
        tf.TensorSpec([None, None, 3], tf.uint8)])
    for resized in (preprocess.resized(image, 16), dynamic(image)):
        expected = tf.image.resize(image, [16, 16], antialias=True)
        np.testing.assert_allclose(resized, expected, atol=1e-3)
        plain = tf.image.resize(image, [16, 16])
        assert np.allclose(resized, plain, atol=1e-3) != antialiased


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_grey_and_alpha_images_become_rgb(channels):
    image = tf.cast(tf.random.uniform([20, 30, channels], 0, 255, tf.int32, seed=2), tf.uint8)
    dynamic = tf.function(lambda x: preprocess.to_rgb_resized(x, 16), input_signature=[
        tf.TensorSpec([None, None, None], tf.uint8)])
    for rgb in (preprocess.to_rgb_resized(image, 16), dynamic(image)):
        assert rgb.shape == (16, 16, 3) and rgb.dtype == tf.uint8
        expected = preprocess.to_rgb_resized(image[..., :3] if channels > 1 else
                                             tf.repeat(image, 3, axis=-1), 16)
        np.testing.assert_array_equal(rgb, expected)


def test_served_pixels_are_the_resized_uint8_scaled_to_unit_floats():
    image = tf.cast(tf.random.uniform([40, 12, 3], 0, 255, tf.int32, seed=3), tf.uint8)
    served = preprocess.preprocess_pixels(image, 16)
    assert served.dtype == tf.float32
    rgb = preprocess.to_rgb_resized(image, 16).numpy()
    np.testing.assert_array_equal(served, rgb.astype(np.float32) / 255)
    encoded = tf.io.encode_png(image)
    np.testing.assert_array_equal(preprocess.preprocess_encoded(encoded, 16), served)
