"""Chooses the tf.distribute strategy named by --strategy."""
from __future__ import annotations

import tensorflow as tf
from absl import logging

from tftransfer.config import ConfigError


def make_strategy(name: str, global_batch_size: int) -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    elif name == "mirrored" or (name == "auto" and gpus):
        # Without GPUs, mirror over the logical CPU devices (tests configure two of them).
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError("batch_size", f"{global_batch_size} does not split evenly over "
                                        f"{replicas} replicas")
    logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy
