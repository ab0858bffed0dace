"""Adversarial examples against a classifier: FGSM and PGD, through the whole model.

Images are float32 in [0, 1]; ε is a per-pixel bound in those units (8/255 ≈ 0.031). The
attacks differentiate the negative log-likelihood of the true class with respect to the
input, through the backbone's restored function, and keep every image in [0, 1].
Adversarial training (train/adversarial.py) and the robustness evaluation
(evaluate/robustness.py) both use them.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tftransfer.model.compile import is_soft


def true_class_nll(labels, probabilities):
    """-log p(true class), or the cross-entropy of one-hot soft labels (mixup, cutmix);
    the small constant keeps the gradient where clipping would cut it (a saturated
    softmax)."""
    log_probabilities = tf.math.log(tf.cast(probabilities, tf.float32) + 1e-12)
    if is_soft(labels):
        return -tf.reduce_sum(tf.cast(labels, tf.float32) * log_probabilities, axis=-1)
    return -tf.gather(log_probabilities, tf.cast(labels, tf.int32), batch_dims=1)


def input_gradient(model: keras.Model, images, labels):
    """d loss / d images, the model in inference mode."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = true_class_nll(labels, model(images, training=False))
    return tape.gradient(loss, images)


def fgsm(model: keras.Model, images, labels, epsilon):
    """One signed-gradient step of size ε (Goodfellow et al., 2015)."""
    step = epsilon * tf.sign(input_gradient(model, images, labels))
    return tf.stop_gradient(tf.clip_by_value(images + step, 0.0, 1.0))


def pgd(model: keras.Model, images, labels, epsilon, steps: int, start_noise=None):
    """Projected gradient ascent in the L∞ ball of radius ε (Madry et al., 2018): a start
    at `start_noise` (uniform in [-1, 1], scaled by ε; none: the clean image), then `steps`
    signed steps of 2.5 ε / steps, each projected back into the ball and [0, 1]."""
    low = tf.maximum(images - epsilon, 0.0)
    high = tf.minimum(images + epsilon, 1.0)
    adversarial = images if start_noise is None else tf.clip_by_value(
        images + epsilon * start_noise, low, high)
    step_size = 2.5 * epsilon / steps

    def ascend(adversarial):
        step = step_size * tf.sign(input_gradient(model, adversarial, labels))
        return (tf.clip_by_value(adversarial + step, low, high),)
    # An explicit loop: Keras traces its train step without AutoGraph.
    adversarial, = tf.while_loop(lambda _: True, ascend, (adversarial,),
                                 maximum_iterations=steps)
    return tf.stop_gradient(adversarial)
