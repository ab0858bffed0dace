"""A tiny TF2 reusable SavedModel (TF-Hub format) with named blocks, for fast tests."""
from __future__ import annotations

import tensorflow as tf


# AutoTrackable, not tf.Module: the hub format saves `variables` as a plain list attribute.
class TinyFeatureExtractor(tf.__internal__.tracking.AutoTrackable):
    """stem conv -> `num_blocks` x (conv, BatchNorm, ReLU) -> global pool -> dense features."""

    def __init__(self, num_blocks: int = 3, width: int = 8, features: int = 16, seed: int = 0):
        super().__init__()
        init = tf.random.stateless_normal
        self._vars = [tf.Variable(init([3, 3, 3, width], [seed, 0]) * 0.3, name="stem/conv/kernel")]
        self._blocks = []
        for b in range(num_blocks):
            kernel = tf.Variable(init([3, 3, width, width], [seed, b + 1]) * 0.2,
                                 name=f"blocks_{b}/conv/kernel")
            gamma = tf.Variable(tf.ones([width]), name=f"blocks_{b}/bn/gamma")
            beta = tf.Variable(tf.zeros([width]), name=f"blocks_{b}/bn/beta")
            mean = tf.Variable(tf.zeros([width]), trainable=False,
                               name=f"blocks_{b}/bn/moving_mean")
            var = tf.Variable(tf.ones([width]), trainable=False,
                              name=f"blocks_{b}/bn/moving_variance")
            self._blocks.append((kernel, gamma, beta, mean, var))
            self._vars += [kernel, gamma, beta, mean, var]
        self._head = tf.Variable(init([width, features], [seed, 99]) * 0.3,
                                 name="head/dense/kernel")
        self._vars.append(self._head)
        self.variables = list(self._vars)
        self.trainable_variables = [v for v in self._vars if v.trainable]
        self.regularization_losses = []

    @tf.function
    def __call__(self, images, training=False):
        x = tf.nn.relu(tf.nn.conv2d(images, self._vars[0], 2, "SAME"))
        for kernel, gamma, beta, mean, var in self._blocks:
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
            if training:
                batch_mean, batch_var = tf.nn.moments(x, [0, 1, 2])
                mean.assign(0.9 * mean + 0.1 * batch_mean)
                var.assign(0.9 * var + 0.1 * batch_var)
                x = tf.nn.batch_normalization(x, batch_mean, batch_var, beta, gamma, 1e-3)
            else:
                x = tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-3)
            x = tf.nn.relu(x)
        return tf.matmul(tf.reduce_mean(x, [1, 2]), self._head)


def save_tiny_hub_module(path: str, **kwargs) -> str:
    module = TinyFeatureExtractor(**kwargs)
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    module.__call__.get_concrete_function(spec, training=True)
    module.__call__.get_concrete_function(spec, training=False)
    tf.saved_model.save(module, path)
    return path
