"""The preprocessing training and serving share: any uint8 image -> the model's input.

The input stage (pipeline.py) resizes to uint8 RGB before caching and scales each batch to
[0, 1]; the SavedModel's signatures (export/saved_model.py) run the same functions in the
graph, so a served image reaches the model as exactly the pixels training saw.
"""
from __future__ import annotations

import tensorflow as tf


def resized(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [..., H, W, C] -> float32 [..., size, size, C]. Antialiasing matters only where
    a side shrinks: enlarging with it gives the same pixels at about 3x the cost."""
    height, width = image.shape[-3], image.shape[-2]
    if height is not None and width is not None:
        return tf.image.resize(image, [size, size], antialias=height > size or width > size)
    shape = tf.shape(image)
    return tf.cond((shape[-3] > size) | (shape[-2] > size),
                   lambda: tf.image.resize(image, [size, size], antialias=True),
                   lambda: tf.image.resize(image, [size, size]))


def to_rgb_resized(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [..., H, W, 1|3|4] -> uint8 RGB [..., size, size, 3] (grey repeated, alpha
    dropped). Grey is resized before it is repeated: a third of the work."""
    rgb = resized(image[..., :3], size)
    rgb = tf.cast(tf.clip_by_value(tf.round(rgb), 0, 255), tf.uint8)
    if rgb.shape[-1] == 1:
        rgb = tf.repeat(rgb, 3, axis=-1)
    elif rgb.shape[-1] is None:
        rgb = tf.cond(tf.shape(rgb)[-1] == 1, lambda: tf.repeat(rgb, 3, axis=-1), lambda: rgb)
    rgb.set_shape(rgb.shape[:-1] + [3])
    return rgb


def to_unit_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1]."""
    return tf.cast(images, tf.float32) / 255.0


def preprocess_pixels(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [H, W, C] -> float32 [size, size, 3] in [0, 1], exactly as training saw it."""
    return to_unit_float(to_rgb_resized(image, size))


def preprocess_encoded(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded image bytes -> float32 [size, size, 3] in [0, 1], exactly as training saw them."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return preprocess_pixels(image, size)
