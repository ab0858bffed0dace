"""Robustness: FGSM/PGD attacks through the whole model, common corruptions, and the
`robustness` block of metrics.json.

Images are float32 in [0, 1]; ε is a per-pixel bound in those units (8/255 ≈ 0.031). The
attacks are model/attacks.py's, which adversarial training uses too.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.data import pipeline as data_lib
from tftransfer.model.attacks import fgsm, pgd

# name -> its parameter at severities 1, 2, 3.
CORRUPTIONS = {
    "gaussian_noise": (0.04, 0.08, 0.16),   # σ of the added noise
    "gaussian_blur": (0.02, 0.04, 0.07),    # σ as a fraction of the image side
    "jpeg": (40, 20, 8),                    # JPEG quality of the re-compression
    "brightness": (0.1, 0.2, 0.3),          # added to every pixel
    "contrast": (0.6, 0.4, 0.2),            # distance to the image mean kept
}


def _gaussian_kernel(sigma: float) -> tf.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return tf.constant(kernel / kernel.sum())


def _blur(images, sigma: float):
    """Separable Gaussian blur, edges reflected."""
    kernel = _gaussian_kernel(sigma)
    radius = (int(kernel.shape[0]) - 1) // 2
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    columns = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "VALID")


def corrupt(images, name: str, severity: int, seed):
    """A batch [N, S, S, 3] in [0, 1] with corruption `name` at severity 1..3; `seed` is a
    stateless seed [2] for the noise."""
    value = CORRUPTIONS[name][severity - 1]
    if name == "gaussian_noise":
        images = images + value * tf.random.stateless_normal(tf.shape(images), seed)
    elif name == "gaussian_blur":
        images = _blur(images, max(value * int(images.shape[1]), 0.3))
    elif name == "jpeg":
        images = tf.map_fn(lambda image: tf.image.adjust_jpeg_quality(image, value), images)
    elif name == "brightness":
        images = images + value
    else:
        images = tf.image.adjust_contrast(images, value)
    return tf.clip_by_value(images, 0.0, 1.0)


class _Counter:
    """Accuracy of `model` on batches of (images, labels, unit noise) after one of
    `transforms` {name: f(images, labels, noise, epsilon)}, each batch split over the
    model's replicas; one traced step per transform, ε a tensor argument."""

    def __init__(self, model: keras.Model, transforms: dict):
        self.model, self.strategy = model, model.distribute_strategy
        self.steps = {name: self._step(transform) for name, transform in transforms.items()}

    def _step(self, transform):
        def replica_step(images, labels, noise, epsilon):
            probabilities = self.model(transform(images, labels, noise, epsilon),
                                       training=False)
            hits = tf.equal(tf.argmax(probabilities, -1, output_type=tf.int32), labels)
            return tf.reduce_sum(tf.cast(hits, tf.int64)), tf.size(labels, tf.int64)

        @tf.function(reduce_retracing=True)  # the last batch is smaller
        def step(batch, epsilon):
            per_replica = self.strategy.run(replica_step, args=(*batch, epsilon))
            return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for v in per_replica]
        return step

    def accuracy(self, batches, transform: str, epsilon: float = 0.0) -> float:
        correct = total = 0
        epsilon = tf.constant(epsilon, tf.float32)
        for batch in self.strategy.experimental_distribute_dataset(batches):
            hits, count = self.steps[transform](batch, epsilon)
            correct, total = correct + int(hits), total + int(count)
        return correct / max(total, 1)


def _examples(data: data_lib.DataBundle, cfg):
    """(split name, unbatched float examples, count): the first robustness_examples of the
    test split (else validation)."""
    split = "test" if data.test is not None else "validation"
    limit = cfg.robustness.robustness_examples or data.sizes[split]
    count = min(limit, data.sizes[split])
    return split, getattr(data, split).unbatch().take(count), count


def _with_noise(examples, batch_size: int, seed: int):
    """Batches with a seeded uniform [-1, 1] tensor per image (PGD's random start)."""
    def add_noise(index, batch):
        images, labels = batch
        noise = tf.random.stateless_uniform(tf.shape(images), [seed, index], -1.0, 1.0)
        return images, labels, noise
    return examples.batch(batch_size).enumerate().map(add_noise)


def _corrupted(batches, name: str, severity: int, seed: int):
    def apply(index, batch):
        images, labels, noise = batch
        return corrupt(images, name, severity, [seed + 1, index]), labels, noise
    return batches.enumerate().map(apply)


def _transforms(model: keras.Model, pgd_steps: int) -> dict:
    return {"clean": lambda x, y, noise, epsilon: x,
            "fgsm": lambda x, y, noise, epsilon: fgsm(model, x, y, epsilon),
            "pgd": lambda x, y, noise, epsilon: pgd(model, x, y, epsilon, pgd_steps, noise)}


def attack_epsilons(cfg) -> list[float]:
    """The evaluated ε: the configured ones and the adversarial-training ε, ascending."""
    return sorted({*cfg.robustness.robustness_epsilons, cfg.adversarial.adversarial_epsilon})


def evaluate_robustness(model: keras.Model, data: data_lib.DataBundle, cfg) -> dict:
    """The `robustness` block of metrics.json: accuracy on the first robustness_examples
    test images, clean, under FGSM and PGD at each ε, and under each corruption."""
    split, examples, count = _examples(data, cfg)
    batch = data_lib.replica_safe_batch_size(cfg.data.batch_size, count,
                                             model.distribute_strategy.num_replicas_in_sync)
    batches = _with_noise(examples, batch, cfg.seed)
    counter = _Counter(model, _transforms(model, cfg.robustness.robustness_pgd_steps))
    clean = counter.accuracy(batches, "clean")
    attacks = [{"attack": name, "epsilon": epsilon,
                "accuracy": counter.accuracy(batches, name, epsilon)}
               for name in ("fgsm", "pgd") for epsilon in attack_epsilons(cfg)]
    corruptions = [{"corruption": name, "severity": severity, "parameter": values[severity - 1],
                    "accuracy": counter.accuracy(_corrupted(batches, name, severity, cfg.seed),
                                                 "clean")}
                   for name, values in CORRUPTIONS.items() for severity in (1, 2, 3)]
    reference = cfg.adversarial.adversarial_epsilon
    robust = next(a["accuracy"] for a in attacks
                  if a["attack"] == "pgd" and a["epsilon"] == reference)
    result = {"split": split, "examples": count, "clean_accuracy": clean,
              "pgd_steps": cfg.robustness.robustness_pgd_steps, "reference_epsilon": reference,
              "robust_accuracy": robust,
              "mean_corruption_accuracy": float(np.mean([c["accuracy"] for c in corruptions])),
              "attacks": attacks, "corruptions": corruptions}
    logging.info("Robustness on %d %s images: clean %.4f, PGD(ε=%g) %.4f, corruptions %.4f",
                 count, split, clean, reference, robust, result["mean_corruption_accuracy"])
    return result
