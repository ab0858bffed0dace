"""Chooses the tf.distribute strategy named by --strategy.

`multi_worker` is TensorFlow's MultiWorkerMirroredStrategy, configured by TF_CONFIG (see
cluster.py for which process writes what). It must be created before any other TensorFlow
op runs in the process, so run.py creates the strategy first.
"""
from __future__ import annotations

import tensorflow as tf
from absl import logging

from tftransfer.config import cluster
from tftransfer.config.errors import first_line
from tftransfer.config.run_config import ConfigError


def _mirrored(gpus) -> tf.distribute.MirroredStrategy:
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    # Without GPUs, mirror over the logical CPU devices (tests configure two). Reducing
    # on one device avoids collective ops, whose instance keys collide when a process
    # creates several strategies.
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")],
        cross_device_ops=tf.distribute.ReductionToOneDevice())


class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3.15 gives it.

    MultiWorkerMirroredStrategy.reduce accepts one value, not a structure, and no axis on
    a scalar. Keras 3.15 passes it the whole first (images, labels) batch to build the
    model, and each step's scalar loss and metrics with axis=0 (keras-team/keras#20585,
    tensorflow/tensorflow#72388). Each value is reduced on its own, scalars over replicas.
    """

    def reduce(self, reduce_op, value, axis):
        reduce_one = super().reduce

        def reduce_value(v):
            scalar = self.experimental_local_results(v)[0].shape.rank == 0
            return reduce_one(reduce_op, v, None if scalar else axis)
        return tf.nest.map_structure(reduce_value, value)


def _multi_worker() -> tf.distribute.MultiWorkerMirroredStrategy:
    task = cluster.check_multi_worker()
    logging.info("Multi-worker task %s of %d worker(s)%s", task.name, task.num_workers,
                 " (chief)" if task.is_chief else "")
    return KerasMultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver())


def _tpu() -> tf.distribute.TPUStrategy:
    """The TPU named by $TPU_NAME (a Cloud TPU node), or the local one on a TPU VM."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise ConfigError("strategy", f"tpu: no TPU found ({first_line(e)}); set TPU_NAME "
                                      "or run on a TPU VM") from None
    return tf.distribute.TPUStrategy(resolver)


def make_strategy(name: str, global_batch_size: int) -> tf.distribute.Strategy:
    if name == "multi_worker":   # before anything else initialises TensorFlow
        strategy = _multi_worker()
    elif name == "tpu":
        strategy = _tpu()
    else:
        gpus = tf.config.list_logical_devices("GPU")
        if name == "one_device":
            strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
        # One GPU needs no mirroring, which costs ~5% a step (benchmarks/strategy.py).
        elif name == "mirrored" or (name == "auto" and len(gpus) >= 2):
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
