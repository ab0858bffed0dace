"""Training-time augmentation of float image batches in [0, 1].

The geometric augmentations (flip, crop, rotation, zoom) are composed into one affine map
per image and applied with a single bilinear resampling, as fastai does: one
interpolation instead of one per Keras layer, so it costs a fraction of chained layers on
a CPU and blurs the image once, not once per step. Contrast, brightness and erasing follow.

Randomness is stateless: every batch brings its own seed (`seeded_batches`), so a run is
reproducible whatever order tf.data's parallel calls finish in, and every epoch differs.
"""
from __future__ import annotations

import math

import tensorflow as tf
from keras import ops

GEOMETRIC = ("flip", "crop", "rotation", "zoom")
# "crop": pad-and-crop, a shift by up to this fraction of each side with reflected borders.
# Not a zoomed-in window: evaluation sees whole images, so a fixed zoom would only teach
# the wrong object size (it cost 3 points of Fashion-MNIST test accuracy).
CROP_SHIFT = 1 / 8
MAX_ROTATION = 0.05     # "rotation": up to this fraction of a full turn either way
MAX_ZOOM = 0.1          # "zoom": scale by up to 10 % in or out
MAX_CONTRAST = 0.2      # "contrast": scale deviations from the mean by 1 +- this
MAX_BRIGHTNESS = 0.1    # "brightness": shift every pixel by up to this
ERASE_PROBABILITY = 0.5  # "erase": share of images given a noise rectangle (Zhong et al.)
ERASE_AREA = (0.02, 0.25)  # its area, as a fraction of the image
ERASE_ASPECT = (0.3, 3.3)  # its height / width, drawn log-uniformly


def _uniform(seed, index: int, shape, low: float, high: float) -> tf.Tensor:
    """Uniform draws from the `index`-th stream of a [2] int64 seed."""
    stream = tf.random.experimental.stateless_fold_in(seed, index)
    return tf.random.stateless_uniform(shape, stream, low, high)


def affine_transforms(seed, batch, height, width, names) -> tf.Tensor:
    """[batch, 8] maps from output to input pixel coordinates (Keras's layout) composing
    the geometric augmentations in `names`."""
    ones = tf.ones([batch])
    mirror = tf.where(_uniform(seed, 0, [batch], 0, 1) < 0.5, -ones, ones) \
        if "flip" in names else ones
    scale = _uniform(seed, 1, [batch], 1 - MAX_ZOOM, 1 + MAX_ZOOM) if "zoom" in names \
        else ones
    angle = _uniform(seed, 2, [batch], -1, 1) * (MAX_ROTATION * 2 * math.pi) \
        if "rotation" in names else tf.zeros([batch])
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    margin = CROP_SHIFT if "crop" in names else 0.0
    shift_x = _uniform(seed, 3, [batch], -margin, margin) * width
    shift_y = _uniform(seed, 4, [batch], -margin, margin) * height
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a0, a1, b0, b1 = cos * mirror, -sin, sin * mirror, cos
    a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
    zeros = tf.zeros([batch])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment_batch(images: tf.Tensor, seed, names: tuple[str, ...]) -> tf.Tensor:
    """Float [B, H, W, C] in [0, 1] -> augmented, still in [0, 1]."""
    shape = tf.shape(images)
    batch = shape[0]
    if any(name in GEOMETRIC for name in names):
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        transforms = affine_transforms(seed, batch, height, width, names)
        images = ops.image.affine_transform(images, transforms, interpolation="bilinear",
                                            fill_mode="reflect")
    if "contrast" in names:
        factor = _uniform(seed, 5, [batch, 1, 1, 1], 1 - MAX_CONTRAST, 1 + MAX_CONTRAST)
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        images = (images - mean) * factor + mean
    if "brightness" in names:
        images += _uniform(seed, 6, [batch, 1, 1, 1], -MAX_BRIGHTNESS, MAX_BRIGHTNESS)
    images = tf.clip_by_value(images, 0.0, 1.0)
    return erase(images, seed) if "erase" in names else images


def erase(images: tf.Tensor, seed) -> tf.Tensor:
    """Random erasing: a rectangle of uniform noise in ERASE_PROBABILITY of the images.

    Written here rather than taken from keras.layers.RandomErasing (Keras 3.15): given an
    int seed it draws every quantity alike and so never erases, and it rejects a tensor
    seed such as ours.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    area = _uniform(seed, 7, [batch], *ERASE_AREA)
    aspect = tf.exp(_uniform(seed, 8, [batch], math.log(ERASE_ASPECT[0]),
                             math.log(ERASE_ASPECT[1])))
    # Box sides as fractions of the image's, at most the whole side.
    box_h = tf.minimum(tf.sqrt(area * aspect), 1.0)
    box_w = tf.minimum(tf.sqrt(area / aspect), 1.0)
    top = _uniform(seed, 9, [batch], 0, 1) * (1 - box_h)
    left = _uniform(seed, 10, [batch], 0, 1) * (1 - box_w)
    rows = (tf.range(tf.cast(height, tf.float32)) + 0.5) / tf.cast(height, tf.float32)
    cols = (tf.range(tf.cast(width, tf.float32)) + 0.5) / tf.cast(width, tf.float32)
    inside_rows = (rows[None] >= top[:, None]) & (rows[None] < (top + box_h)[:, None])
    inside_cols = (cols[None] >= left[:, None]) & (cols[None] < (left + box_w)[:, None])
    chosen = _uniform(seed, 11, [batch], 0, 1) < ERASE_PROBABILITY
    mask = inside_rows[:, :, None] & inside_cols[:, None, :] & chosen[:, None, None]
    noise = tf.cast(_uniform(seed, 12, shape, 0.0, 1.0), images.dtype)
    return tf.where(mask[..., None], noise, images)


def seeded_batches(ds: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """(images, labels) batches -> ((images, labels), [2] seed): a seed per batch, drawn
    afresh every epoch yet the same for every run with this `seed`."""
    seeds = tf.data.Dataset.random(seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds)


def augmenter(names: tuple[str, ...]):
    """A map function for `seeded_batches`' elements -> augmented (images, labels), or
    None when there is nothing to do."""
    if not names:
        return None

    def augment(batch, seed):
        images, labels = batch
        return augment_batch(images, seed, names), labels
    return augment
