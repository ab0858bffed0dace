"""Chooses the tf.distribute strategy named by --strategy."""
from __future__ import annotations

import tensorflow as tf
from absl import logging

from tftransfer.config import ConfigError


def _mirrored(gpus) -> tf.distribute.MirroredStrategy:
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    # Without GPUs, mirror over the logical CPU devices (tests configure two). Reducing
    # on one device avoids collective ops, whose instance keys collide when a process
    # creates several strategies.
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")],
        cross_device_ops=tf.distribute.ReductionToOneDevice())


def make_strategy(name: str, global_batch_size: int) -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    elif name == "mirrored" or (name == "auto" and gpus):
        strategy = _mirrored(gpus)
    else:
        strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError("batch_size", f"{global_batch_size} does not split evenly over "
                                        f"{replicas} replicas")
    logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy
