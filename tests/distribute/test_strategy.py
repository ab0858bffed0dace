"""Strategy choice. Multi-worker training itself runs in separate processes
(test_multi_worker.py): MultiWorkerMirroredStrategy must be created before TensorFlow
initialises, which conftest has already done in this process."""
import types

import pytest
import tensorflow as tf

from tftransfer.config import cluster
from tftransfer.config.run_config import ConfigError
from tftransfer.distribute import strategy as distribute


@pytest.mark.parametrize("name, replicas", [("mirrored", 2), ("one_device", 1), ("auto", 1)])
def test_single_machine_strategies(name, replicas):
    strategy = distribute.make_strategy(name, global_batch_size=8)
    assert strategy.num_replicas_in_sync == replicas


@pytest.mark.parametrize("gpus, mirrored", [(0, False), (1, False), (2, True)])
def test_auto_mirrors_only_over_two_or_more_gpus(monkeypatch, gpus, mirrored):
    fake_gpus = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(gpus)]
    real_list = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: fake_gpus if kind == "GPU" else real_list(kind))
    fake_mirrored = types.SimpleNamespace(num_replicas_in_sync=gpus)
    monkeypatch.setattr(distribute, "_mirrored", lambda devices: fake_mirrored)
    chosen = distribute.make_strategy("auto", global_batch_size=8)
    assert chosen is (fake_mirrored if mirrored else tf.distribute.get_strategy())


def test_the_global_batch_must_split_over_the_replicas():
    with pytest.raises(ConfigError, match="does not split evenly over 2 replicas") as raised:
        distribute.make_strategy("mirrored", global_batch_size=7)
    assert raised.value.flag == "batch_size"


def test_multi_worker_without_tf_config_fails_before_tensorflow_does(monkeypatch):
    monkeypatch.delenv(cluster.TF_CONFIG, raising=False)
    with pytest.raises(ConfigError, match="multi_worker needs TF_CONFIG"):
        distribute.make_strategy("multi_worker", global_batch_size=8)


def test_tpu_without_a_tpu_is_one_line(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ConfigError) as raised:
        distribute.make_strategy("tpu", global_batch_size=8)
    assert raised.value.flag == "strategy"
    assert str(raised.value).startswith("--strategy: tpu: no TPU found")
    assert "\n" not in str(raised.value)
    assert not tf.distribute.has_strategy()
