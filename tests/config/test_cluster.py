"""Roles in a cluster (TF_CONFIG, KerasTuner's environment), private worker folders, and
the validation of the cluster flags. No TensorFlow processes are started here."""
import json
import os

import pytest
from conftest import make_config

from tftransfer.config import cluster
from tftransfer.config.run_config import ConfigError, RunConfig

ADDRESSES = ["127.0.0.1:2001", "127.0.0.1:2002", "127.0.0.1:2003"]


def _env(index, **cluster_spec):
    spec = cluster_spec or {"worker": ADDRESSES}
    kind = "chief" if index == "chief" else "worker"
    return {cluster.TF_CONFIG: json.dumps({"cluster": spec, "task": {
        "type": kind, "index": 0 if index == "chief" else index}})}


def test_worker_zero_is_the_chief_unless_the_cluster_names_one():
    assert cluster.tf_config_task({}) is None
    tasks = [cluster.tf_config_task(_env(i)) for i in range(3)]
    assert [t.is_chief for t in tasks] == [True, False, False]
    assert [t.name for t in tasks] == ["worker_0", "worker_1", "worker_2"]
    assert {t.num_workers for t in tasks} == {3}
    with_chief = {"chief": ["127.0.0.1:2000"], "worker": ADDRESSES[:2]}
    assert cluster.tf_config_task(_env("chief", **with_chief)).is_chief
    worker_0 = cluster.tf_config_task(_env(0, **with_chief))
    assert not worker_0.is_chief and worker_0.num_workers == 3


def test_the_launchers_tf_config_round_trips():
    task = cluster.tf_config_task({cluster.TF_CONFIG: cluster.tf_config_json(ADDRESSES, 2)})
    assert (task.type, task.index, task.num_workers, task.is_chief) == ("worker", 2, 3, False)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not"),
    (json.dumps({"cluster": {"worker": ADDRESSES}}), "not"),
    (json.dumps({"cluster": {"worker": ADDRESSES}, "task": {"type": "worker", "index": 3}}),
     "is not one of"),
    (json.dumps({"cluster": {"worker": ADDRESSES}, "task": {"type": "ps", "index": 0}}),
     "is not one of"),
])
def test_a_malformed_tf_config_is_a_config_error(text, message):
    with pytest.raises(ConfigError, match=message) as raised:
        cluster.tf_config_task({cluster.TF_CONFIG: text})
    assert raised.value.flag == "strategy"


def test_tuner_roles_follow_keras_tuner_environment():
    lone = {cluster.TUNER_ID: "tuner0"}  # no oracle address: not a distributed search
    assert cluster.tuner_id(lone) == "" and not cluster.is_tuner_worker(lone)
    chief = cluster.tuner_environment("chief", "10.0.0.1", 8000)
    worker = cluster.tuner_environment("tuner1", "10.0.0.1", 8000)
    assert cluster.is_search_chief(chief) and not cluster.is_tuner_worker(chief)
    assert cluster.is_tuner_worker(worker) and not cluster.is_search_chief(worker)
    assert cluster.log_file_name(chief) == "run.log"
    assert cluster.log_file_name(worker) == "run.tuner1.log"


def test_flags_set_keras_tuners_environment():
    environ = {cluster.TUNER_ID: "tuner9"}
    cluster.export_tuner_flags("tuner2", "oracle.example:8470", environ)
    assert environ == cluster.tuner_environment("tuner2", "oracle.example", 8470)
    cluster.export_tuner_flags("", "", environ)
    assert environ[cluster.TUNER_ID] == "tuner2"   # empty flags leave the environment
    assert cluster.parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("no-port", "host:", "host:0", "host:99999", ":80"):
        with pytest.raises(ConfigError, match="host:port"):
            cluster.parse_address(bad)


def test_non_chief_workers_write_to_a_private_folder_removed_at_the_end(tmp_path):
    cfg = RunConfig(output_dir=str(tmp_path), strategy="multi_worker")
    with cluster.writer_output_dir(cfg, _env(0)) as chief_cfg:
        assert chief_cfg is cfg
    with cluster.writer_output_dir(cfg, _env(2)) as worker_cfg:
        private = worker_cfg.output_dir
        assert private == os.path.join(str(tmp_path), ".workers", "worker_2")
        open(os.path.join(private, "metrics.json"), "w").close()
    assert not os.path.exists(os.path.join(str(tmp_path), ".workers"))
    single = RunConfig(output_dir=str(tmp_path), strategy="mirrored")
    with cluster.writer_output_dir(single, _env(2)) as same:  # TF_CONFIG alone changes nothing
        assert same is single


def test_a_failed_worker_keeps_its_folder_for_the_restart(tmp_path):
    cfg = RunConfig(output_dir=str(tmp_path), strategy="multi_worker")
    with pytest.raises(RuntimeError):
        with cluster.writer_output_dir(cfg, _env(1)) as worker_cfg:
            os.makedirs(os.path.join(worker_cfg.output_dir, "backup"))
            raise RuntimeError("killed mid-training")
    assert os.path.isdir(os.path.join(str(tmp_path), ".workers", "worker_1", "backup"))
    with cluster.writer_output_dir(cfg, _env(1)) as again:   # the same folder on restart
        assert os.path.isdir(os.path.join(again.output_dir, "backup"))


@pytest.mark.parametrize("values, environ, flag", [
    ({"strategy": "multi_worker"}, {}, "strategy"),
    ({"strategy": "multi_worker"}, {cluster.TF_CONFIG: "[]"}, "strategy"),
    ({"search": "random", "tuner_id": "tuner0"}, {}, "oracle_address"),
    ({"search": "random", "oracle_address": "127.0.0.1:80"}, {}, "tuner_id"),
    ({"search": "random", "tuner_id": "tuner0", "oracle_address": "nowhere"}, {},
     "oracle_address"),
    ({"tuner_id": "tuner0", "oracle_address": "127.0.0.1:80"}, {}, "search"),
    ({}, cluster.tuner_environment("tuner0", "127.0.0.1", 80), "search"),
    ({"search": "random", "strategy": "multi_worker"},
     {**cluster.tuner_environment("tuner0", "127.0.0.1", 80),
      cluster.TF_CONFIG: cluster.tf_config_json(ADDRESSES, 0)}, "strategy"),
])
def test_cluster_flags_are_validated(tmp_path, tiny_hub_dir, color_folder, monkeypatch,
                                     values, environ, flag):
    for name in (cluster.TF_CONFIG, cluster.TUNER_ID, cluster.ORACLE_IP, cluster.ORACLE_PORT):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, **values)
    assert raised.value.flag == flag


def test_valid_cluster_settings_pass(tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    monkeypatch.setenv(cluster.TF_CONFIG, cluster.tf_config_json(ADDRESSES, 1))
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      strategy="multi_worker")
    assert cfg.strategy == "multi_worker"
    monkeypatch.delenv(cluster.TF_CONFIG)
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      search="random", tuner_id="chief", oracle_address="127.0.0.1:8000")
    assert (cfg.search.tuner_id, cfg.search.oracle_address) == ("chief", "127.0.0.1:8000")
