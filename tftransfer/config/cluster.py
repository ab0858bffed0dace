"""Which process of a cluster this is, read from TF_CONFIG and KerasTuner's environment.

Multi-worker training (`--strategy=multi_worker`) is configured by `TF_CONFIG`, the JSON
`{"cluster": {"chief": [...], "worker": ["host:port", ...]}, "task": {"type": ..., "index": i}}`
that TensorFlow and Kubernetes TFJobs use. The chief (or worker 0 when there is no chief)
writes the run's outputs; every other worker writes to a private folder that is removed
when its run ends, so nothing it writes competes with the chief's.

Distributed search is KerasTuner's own: `KERASTUNER_TUNER_ID` (`chief` serves the oracle,
`tuner0`, `tuner1`... run trials), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`,
or the flags `--tuner_id` and `--oracle_address` that set them.

No TensorFlow here: validation and the launcher use this before TensorFlow starts.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Iterator, Mapping, MutableMapping

from tftransfer.config.run_config import ConfigError, RunConfig

TF_CONFIG = "TF_CONFIG"
TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
WORKERS_FOLDER = ".workers"   # under output_dir: private folders of non-chief workers
TRAINING_TASKS = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in a TF_CONFIG cluster."""
    type: str
    index: int
    num_workers: int      # chief + workers: the processes that train
    has_chief: bool       # without a chief task, worker 0 is the chief

    @property
    def is_chief(self) -> bool:
        return self.type == "chief" or (self.index == 0 and not self.has_chief)

    @property
    def name(self) -> str:
        return f"{self.type}_{self.index}"


def tf_config_task(environ: Mapping[str, str] = os.environ) -> Task | None:
    """The task TF_CONFIG describes, or None without TF_CONFIG; ConfigError if malformed."""
    text = environ.get(TF_CONFIG, "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = task["type"], int(task["index"])
        members = {kind: list(cluster.get(kind, [])) for kind in TRAINING_TASKS}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError("strategy", f"TF_CONFIG is not {{\"cluster\": {{...}}, \"task\": "
                                      f"{{\"type\", \"index\"}}}} JSON: {e}") from None
    if task_type not in TRAINING_TASKS or not 0 <= index < len(members[task_type]):
        raise ConfigError("strategy", f"TF_CONFIG task {task_type}:{index} is not one of the "
                                      f"cluster's chief/worker addresses")
    if len(members["chief"]) > 1:
        raise ConfigError("strategy", "TF_CONFIG lists more than one chief")
    return Task(task_type, index, len(members["chief"]) + len(members["worker"]),
                has_chief=bool(members["chief"]))


def check_multi_worker(environ: Mapping[str, str] = os.environ) -> Task:
    task = tf_config_task(environ)
    if task is None:
        raise ConfigError("strategy", "multi_worker needs TF_CONFIG describing the cluster "
                                      "and this task (see BUILD.md, or use tftransfer.launch)")
    return task


def export_tuner_flags(tuner_id: str, oracle_address: str,
                       environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets KerasTuner's environment from --tuner_id/--oracle_address (flags win)."""
    if tuner_id:
        environ[TUNER_ID] = tuner_id
    if oracle_address:
        host, port = parse_address(oracle_address)
        environ[ORACLE_IP], environ[ORACLE_PORT] = host, str(port)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("oracle_address", f"expected host:port, got '{address}'")
    return host.strip("[]"), int(port)


def tuner_id(environ: Mapping[str, str] = os.environ) -> str:
    """This process's KerasTuner id in a distributed search, or '' for a lone tuner.
    KerasTuner itself treats any id containing 'chief' as the chief."""
    return environ.get(TUNER_ID, "") if ORACLE_IP in environ else ""


def is_tuner_worker(environ: Mapping[str, str] = os.environ) -> bool:
    """A distributed-search process that runs trials only (the chief trains and exports)."""
    return bool(tuner_id(environ)) and not is_search_chief(environ)


def is_search_chief(environ: Mapping[str, str] = os.environ) -> bool:
    """The distributed-search process that serves the oracle and runs no trials."""
    return "chief" in tuner_id(environ)


def log_file_name(environ: Mapping[str, str] = os.environ) -> str:
    """Tuner workers share the chief's output_dir, so each logs to its own file."""
    return f"run.{tuner_id(environ)}.log" if is_tuner_worker(environ) else "run.log"


@contextlib.contextmanager
def writer_output_dir(cfg: RunConfig,
                      environ: Mapping[str, str] = os.environ) -> Iterator[RunConfig]:
    """`cfg` for this process: a non-chief multi-worker task writes (exports, reports,
    summaries, checkpoints, its backup) to <output_dir>/.workers/<task>, removed when the
    run ends without an error. The name is fixed so a restarted worker finds its backup."""
    task = tf_config_task(environ) if cfg.strategy == "multi_worker" else None
    if task is None or task.is_chief:
        yield cfg
        return
    workers_root = os.path.join(cfg.output_dir, WORKERS_FOLDER)
    private = os.path.join(workers_root, task.name)
    os.makedirs(private, exist_ok=True)
    yield dataclasses.replace(cfg, output_dir=private)
    shutil.rmtree(private, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(workers_root)   # only once every worker's folder is gone


def tf_config_json(addresses: list[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a cluster of workers at `addresses` (worker 0 is
    the chief)."""
    return json.dumps({"cluster": {"worker": addresses},
                       "task": {"type": "worker", "index": index}})


def tuner_environment(tuner: str, host: str, port: int) -> dict[str, str]:
    return {TUNER_ID: tuner, ORACLE_IP: host, ORACLE_PORT: str(port)}
