"""Scale-out on one machine, through the launcher, over loopback only: two processes train
with MultiWorkerMirroredStrategy as well as one; a killed worker's cluster resumes from
its backups; a KerasTuner chief and two tuners run each trial exactly once.

Every process is a real `python -m tftransfer.run` with one CPU device. They are slow on
a shared 2-core machine, so the models are tiny and every wait is long but bounded."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO, make_config, write_color_folder

from tftransfer.cli import run as run_lib

pytestmark = pytest.mark.e2e

LAUNCH_SECONDS = 900
ACCURACY_TOLERANCE = 0.1
LOSS_TOLERANCE = 0.01   # relative, on each epoch's training loss


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> str:
    """120 images (96 train, 12 validation, 12 test): even splits over 2 workers."""
    return write_color_folder(tmp_path_factory.mktemp("colors40"), per_class=40)


def _values(colors, hub, epochs):
    """No augmentation or dropout: one worker and two see the same global batches and
    average the same gradients, so their losses agree to float rounding."""
    return {"dataset": colors, "hub_handle": hub, "image_size": 24, "batch_size": 16,
            "augment": False, "dropout": 0.0, "fine_tune_depth": 0, "epochs": epochs,
            "head_epochs": 1, "learning_rate": 0.3, "early_stopping_patience": 0}


def _flags(values: dict, output_dir) -> list[str]:
    flags = [f"--{name}={','.join(v) if isinstance(v, list) else v}"
             for name, v in values.items()]
    return [*flags, f"--output_dir={output_dir}"]


def _launch_command(*args) -> list[str]:
    # The launcher's own timeout stops its processes cleanly before ours kills it.
    return [sys.executable, "-m", "tftransfer.launch", f"--timeout={LAUNCH_SECONDS - 60}",
            *args]


def _launch(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_launch_command(*args), cwd=REPO, capture_output=True, text=True,
                          timeout=LAUNCH_SECONDS)


def _lines(output: str, name: str) -> list[str]:
    prefix = f"[{name}] "
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


def _tails(output: str, count: int = 30) -> str:
    """Each process's own last `count` lines, then the launcher's: a failure shows the
    process that failed, not whichever printed last."""
    by_process: dict[str, list[str]] = {}
    for line in output.splitlines():
        match = re.match(r"\[([^\]]+)\] ", line)
        by_process.setdefault(match.group(1) if match else "launcher", []).append(line)
    return "\n".join(f"--- {name}, last {count} lines ---\n" + "\n".join(lines[-count:])
                     for name, lines in by_process.items())


def _metrics(output_dir) -> dict:
    with open(os.path.join(output_dir, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def test_two_workers_reach_the_accuracy_of_one(tmp_path, colors, tiny_hub_dir):
    values = _values(colors, tiny_hub_dir, epochs=4)
    single = run_lib.run(make_config(tmp_path / "single", strategy="one_device", **values))
    launched = _launch("--workers=2", *_flags(values, tmp_path / "two"))
    assert launched.returncode == 0, _tails(launched.stdout)
    two = _metrics(tmp_path / "two")
    one = single.metrics
    # Every test image was evaluated once, though each worker held half of every batch.
    assert two["test"]["num_examples"] == one["test"]["num_examples"] == 12
    assert one["test"]["accuracy"] >= 0.8 and two["test"]["accuracy"] >= 0.8
    assert abs(two["test"]["accuracy"] - one["test"]["accuracy"]) <= ACCURACY_TOLERANCE
    losses = [m["training"]["phases"][0]["history"]["loss"] for m in (one, two)]
    assert len(losses[0]) == 4 and losses[1] == pytest.approx(losses[0], rel=LOSS_TOLERANCE)
    # Only the chief wrote outputs; worker 1's private folder is gone.
    assert os.path.isfile(os.path.join(tmp_path / "two", "labels.txt"))
    assert not os.path.exists(os.path.join(tmp_path / "two", ".workers"))
    exported = [line for name in ("worker 0", "worker 1")
                for line in _lines(launched.stdout, name) if "Exported SavedModel" in line]
    assert len(exported) == 2 and str(tmp_path / "two" / ".workers" / "worker_1") in exported[1]


class _Reader:
    """Collects a launcher's output lines as they come."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, process, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and process.poll() is None:
            if predicate(list(self.lines)):
                return True
            time.sleep(0.1)
        return predicate(list(self.lines))


def _both_in_epoch(epoch: int, epochs: int):
    marks = {f"[worker {i}] Epoch {epoch}/{epochs}" for i in range(2)}
    return lambda lines: marks <= set(lines)


def test_a_killed_worker_resumes_from_the_backup(tmp_path, colors, tiny_hub_dir):
    epochs, out = 4, tmp_path / "out"
    args = ["--workers=2", *_flags(_values(colors, tiny_hub_dir, epochs), out)]
    launcher = subprocess.Popen(_launch_command(*args), cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        reader = _Reader(launcher)
        # Both workers backed up epoch 2 and are inside epoch 3, which needs both of them.
        assert reader.wait_for(_both_in_epoch(3, epochs), launcher, LAUNCH_SECONDS - 60), \
            "\n".join(reader.lines[-50:])
        pid = int(re.search(r"\[launch\] started worker 1 \(pid (\d+)\)",
                            "\n".join(reader.lines)).group(1))
        os.kill(pid, signal.SIGKILL)
        assert launcher.wait(timeout=300) == 1   # the launcher stopped the chief too
    finally:
        launcher.kill()
        launcher.wait()
        launcher.stdout.close()
    assert "[launch] worker 1 exited with status -9; stopping all" in reader.lines
    for backup in (out / "backup", out / ".workers" / "worker_1" / "backup"):
        with open(backup / "head" / "training_metadata.json") as f:
            assert json.load(f)["epoch"] == 2, backup

    restarted = _launch(*args)
    assert restarted.returncode == 0, _tails(restarted.stdout)
    for name in ("worker 0", "worker 1"):
        epoch_lines = [line for line in _lines(restarted.stdout, name)
                       if line.startswith("Epoch ")]
        assert epoch_lines == [f"Epoch 3/{epochs}", f"Epoch 4/{epochs}"], name
    assert _metrics(out)["training"]["phases"][0]["epochs"] == 2
    assert not os.path.exists(out / ".workers") and not os.path.exists(out / "backup")


def test_distributed_search_runs_every_trial_once(tmp_path, colors, tiny_hub_dir):
    out = tmp_path / "search"
    values = {**_values(colors, tiny_hub_dir, epochs=1), "search": "random", "max_trials": 4,
              "search_epochs": 1}
    launched = _launch("--tuner_workers=2", *_flags(values, out))
    assert launched.returncode == 0, _tails(launched.stdout)
    with open(out / "search.json") as f:
        oracle_trials = {t["trial_id"]: t for t in json.load(f)["trials"]}
    assert len(oracle_trials) == 4
    assert all(t["status"] == "COMPLETED" for t in oracle_trials.values())
    ran = {}
    for tuner in ("tuner0", "tuner1"):
        with open(out / "search" / f"trial_seconds.{tuner}.json") as f:
            ran[tuner] = set(json.load(f))
        assert ran[tuner], f"{tuner} ran no trial"
        assert {i for i, t in oracle_trials.items() if t["tuner"] == tuner} == ran[tuner]
    assert not ran["tuner0"] & ran["tuner1"]
    assert ran["tuner0"] | ran["tuner1"] == set(oracle_trials)
    # The chief alone trained the best trial and exported it; the tuners stopped after trials.
    exports = [(name, line) for name in ("chief", "tuner0", "tuner1")
               for line in _lines(launched.stdout, name) if "Exported SavedModel" in line]
    assert [name for name, _ in exports] == ["chief"]
    for tuner in ("tuner0", "tuner1"):
        assert any("no trials left" in line for line in _lines(launched.stdout, tuner))
        assert os.path.isfile(out / f"run.{tuner}.log")
    assert any("saved_model.pb" in files for _, _, files in os.walk(out / "saved_model"))


SOAK_ROUNDS = int(os.environ.get("TFTRANSFER_SOAK_ROUNDS", "2"))


@pytest.fixture
def cpu_hog():
    """A busy process per core beside the test: timing races show up under load."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


@pytest.mark.parametrize("round_", range(SOAK_ROUNDS))
def test_soak_the_distributed_search_and_a_killed_worker_under_load(
        round_, cpu_hog, tmp_path, colors, tiny_hub_dir):   # pylint: disable=unused-argument
    test_distributed_search_runs_every_trial_once(tmp_path / "search", colors, tiny_hub_dir)
    test_a_killed_worker_resumes_from_the_backup(tmp_path / "resume", colors, tiny_hub_dir)
