"""Training-time augmentation of float image batches in [0, 1].

The geometric augmentations (flip, crop, rotation, zoom) are composed into one affine map
per image and applied with a single bilinear resampling, as fastai does: one
interpolation instead of one per Keras layer, so it costs a fraction of chained layers on
a CPU and blurs the image once, not once per step. Contrast, brightness, Keras's
RandAugment and erasing follow. MixUp and CutMix (Keras's layers) come last and mix whole
batches: the labels then become one-hot soft labels [B, C] that the loss (model/compile.py)
takes as they are; with both named, each batch gets one of the two, as timm does.

Randomness is stateless: every batch brings its own seed (`seeded_batches`), so a run is
reproducible whatever order tf.data's parallel calls finish in, and every epoch differs.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from tftransfer import private_api

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
MIXING = ("mixup", "cutmix")  # mix pairs of a batch's images and their labels
MIXUP_ALPHA = 0.2       # Keras's default, the Beta(alpha, alpha) of the mixing weights
CUTMIX_FACTOR = 1.0     # Keras's default
RANDAUGMENT_OPS = 2     # RandAugment: operations per image and their strength (Keras's)
RANDAUGMENT_FACTOR = 0.5
# The Keras layers' dtype: the pipeline stays float32 under a mixed-precision policy.
PIPELINE_DTYPE = "float32"


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


def mixes_labels(names) -> bool:
    """Whether `names` make the training labels one-hot soft labels."""
    return any(name in MIXING for name in names)


class BatchSeeds(keras.random.SeedGenerator):
    """A SeedGenerator whose draws are stateless streams of one [2] seed tensor, so Keras's
    random layers follow the per-batch seeds too. Keras's own holds a variable, whose
    draws parallel tf.data calls would order differently in each run; this one holds
    none, hence no call to SeedGenerator.__init__ (which creates it)."""

    def __init__(self, seed):  # pylint: disable=super-init-not-called
        self.seed, self.draws = seed, 0

    def next(self, ordered=True):
        self.draws += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.draws)


class BatchSeededRandAugment(private_api.SeedsFromBatch, keras.layers.RandAugment):
    """Keras's RandAugment drawing from the batch's seeds (randaugment())."""


def _stream(seed, index: int):
    return tf.random.experimental.stateless_fold_in(seed, index)


def randaugment_layer() -> keras.layers.RandAugment:
    return BatchSeededRandAugment(value_range=(0, 1), num_ops=RANDAUGMENT_OPS,
                                   factor=RANDAUGMENT_FACTOR, dtype=PIPELINE_DTYPE)


def randaugment(layer, images: tf.Tensor, seed) -> tf.Tensor:
    """Keras's RandAugment of a [0, 1] batch, its draws from `seed`."""
    layer.batch_seeds = BatchSeeds(_stream(seed, 13))
    try:
        return tf.clip_by_value(layer(images, training=True), 0.0, 1.0)
    finally:
        layer.batch_seeds = None


def mixing_layers() -> dict:
    return {"mixup": keras.layers.MixUp(alpha=MIXUP_ALPHA, dtype=PIPELINE_DTYPE),
            "cutmix": keras.layers.CutMix(factor=CUTMIX_FACTOR, dtype=PIPELINE_DTYPE)}


def _mixed_by(layer, images, soft_labels, seed):
    data = {"images": images, "labels": soft_labels}
    transformation = layer.get_random_transformation(data, training=True,
                                                     seed=BatchSeeds(seed))
    return (layer.transform_images(images, transformation),
            layer.transform_labels(soft_labels, transformation))


def mix_batch(layers: dict, images: tf.Tensor, soft_labels: tf.Tensor, seed):
    """(images, soft labels [B, C]) mixed by each batch's pick among `layers` ({name:
    Keras MixUp or CutMix layer}), all drawn from `seed`."""
    mixed = [_mixed_by(layer, images, soft_labels, _stream(seed, 14 + i))
             for i, layer in enumerate(layers.values())]
    if len(mixed) == 1:
        return mixed[0]
    first = _uniform(seed, 16, [], 0, 1) < 0.5
    return (tf.where(first, mixed[0][0], mixed[1][0]),
            tf.where(first, mixed[0][1], mixed[1][1]))


def augment_batch(images: tf.Tensor, seed, names: tuple[str, ...],
                  rand_augment=None) -> tf.Tensor:
    """Float [B, H, W, C] in [0, 1] -> augmented, still in [0, 1]; `rand_augment`: the
    layer (randaugment_layer()) when `names` hold randaugment."""
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
    if "randaugment" in names:
        images = randaugment(rand_augment or randaugment_layer(), images, seed)
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


def augmenter(names: tuple[str, ...], num_classes: int = 0):
    """A map function for `seeded_batches`' elements -> augmented (images, labels), or
    None when there is nothing to do. With mixup or cutmix the labels leave as one-hot
    soft labels over `num_classes`."""
    if not names:
        return None
    if mixes_labels(names) and num_classes < 2:
        raise ValueError(f"mixing labels needs the number of classes, got {num_classes}")
    # Built once, outside the traced function: layers hold state Keras creates eagerly.
    rand_augment = randaugment_layer() if "randaugment" in names else None
    mixers = {name: layer for name, layer in mixing_layers().items() if name in names}

    def augment(batch, seed):
        images, labels = batch
        images = augment_batch(images, seed, names, rand_augment)
        if not mixers:
            return images, labels
        soft_labels = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes)
        return mix_batch(mixers, images, soft_labels, seed)
    return augment
