"""Shared setup for the benchmarks: real offline assets, configs, timing, and the result lines.

Every benchmark prints the machine first and its ratio last, as `<name>: <value>x`.
Ratios are measured side by side in one process, the sides taking turns, and compare
each side's fastest run, because a shared machine's speed drifts from minute to minute.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
# Measure the checkout these scripts live in, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def arguments(doc: str, add: Callable[[argparse.ArgumentParser], None] | None = None):
    """The script's arguments: --quick (a small smoke run) and whatever `add` defines."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run (tests)")
    if add:
        add(parser)
    return parser.parse_args()


_SCRATCH = tempfile.mkdtemp(prefix="tftransfer_bench_")
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


def scratch_dir(name: str) -> str:
    """A fresh folder, deleted when the script exits."""
    return tempfile.mkdtemp(prefix=f"{name}_", dir=_SCRATCH)


def real_config(**flags):
    """A validated RunConfig on the real offline assets (Lite0, Fashion-MNIST), which are
    built into ~/.cache/tftransfer first if missing; `flags` override the defaults."""
    from tftransfer import assets
    from tftransfer.config import run_config as config_lib
    from tftransfer.config.validation import validate

    handle = assets.build_all()["hub_handle"]
    values = {"dataset": "fashion_mnist", "data_dir": assets.tfds_dir(), "hub_handle": handle,
              "test_split": "", "augment": False, "output_dir": scratch_dir("run"), **flags}
    return validate(config_lib.from_flat(values))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tftransfer(name: str, flags: list[str], tolerate_user_error: bool = False
                   ) -> tuple[float, dict]:
    """`python -m tftransfer.run FLAGS` from this checkout into a fresh scratch output dir:
    (wall seconds, its metrics.json). A failure ends the script, except a one-line user
    error (exit 2) when `tolerate_user_error`: then the metrics are {"error": that line}."""
    output_dir = scratch_dir(name)
    command = [sys.executable, "-m", "tftransfer.run", *flags, f"--output_dir={output_dir}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        ROOT, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if finished.returncode == 2 and tolerate_user_error:
        return seconds, {"error": finished.stderr.strip().splitlines()[-1]}
    if finished.returncode != 0:
        sys.exit(f"{' '.join(flags)} failed ({finished.returncode}):\n"
                 f"{finished.stderr[-3000:]}")
    with open(os.path.join(output_dir, "metrics.json"), encoding="utf-8") as f:
        return seconds, json.load(f)


def in_memory_batches(pipeline):
    """One epoch of a batched pipeline, materialised: a dataset of its (equal) batches."""
    import numpy as np
    import tensorflow as tf

    batches = list(pipeline.as_numpy_iterator())
    images, labels = (np.stack([batch[i] for batch in batches]) for i in (0, 1))
    return tf.data.Dataset.from_tensor_slices((images, labels))  # one element per batch


def print_machine() -> None:
    from tftransfer.evaluate import performance

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {performance.device_name()}; load average at start {load:.1f}")


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def alternate(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call over `rounds`, the calls taking turns within each round, so
    drift in the machine's speed falls on every side alike."""
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            seconds[name].append(timed(call))
    return seconds


def ratio_of_best(numerator: list[float], denominator: list[float]) -> float:
    """The ratio of each side's fastest run: on a shared machine, load only adds time."""
    return min(numerator) / min(denominator)


def epoch_timer():
    """A Keras callback whose `.seconds` lists every epoch's wall time."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def goal(met: bool, text: str) -> None:
    print(f"goal {text}: {'met' if met else 'NOT met'}")


def report(name: str, value: float) -> None:
    """The last line of every benchmark."""
    print(f"{name}: {value:.3f}x" if value < 10 else f"{name}: {value:.1f}x", flush=True)
