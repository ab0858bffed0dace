"""Faults and determinism, end to end: `python -m tftransfer.run` is killed with SIGKILL at
chosen moments (tests/run_until_paused.py holds it there), then the same command runs again.

Class folders are named with spaces and non-ASCII letters, so every run also carries such
names from the folder to the export's labels.
"""
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import REPO, TESTS, make_config

from tftransfer.cli import run as run_lib
from tftransfer.config.errors import StorageError, as_storage_error
from tftransfer.export import layout as export_layout, saved_model as export
from tftransfer.model import classifier as model_lib

CLASS_NAMES = ["grün", "red apple", "青い"]   # sorted, as the folder reader orders them
# Wall-clock figures differ run to run; an export's size differs by a few bytes with how many
# functions the process traced before (saved_model.pb names them by a process-wide counter).
MEASURED = ("second", "latency", "throughput", "memory", "megabytes")


def _unicode_folder(color_folder, root) -> str:
    for name, source in zip(CLASS_NAMES, ("class_0", "class_1", "class_2")):
        shutil.copytree(os.path.join(color_folder, source), os.path.join(root, name))
    os.rename(os.path.join(root, "青い", "0.jpg"), os.path.join(root, "青い", "ß 0.jpg"))
    return str(root)


@pytest.fixture(scope="module")
def flags(tmp_path_factory, tiny_hub_dir, color_folder):
    """Command lines: a tiny search (frozen trials on cached features), and a two-phase
    training without search."""
    root = tmp_path_factory.mktemp("reliability")
    dataset = _unicode_folder(color_folder, root / "data set")
    space = root / "space.json"
    space.write_text(json.dumps({"fine_tune_depth": 0, "augment": False, "head_units": [""],
                                 "optimizer": "adam",
                                 "learning_rate": {"min": 0.01, "max": 0.1, "log": True}}))
    common = [f"--dataset={dataset}", f"--hub_handle={tiny_hub_dir}", "--image_size=24",
              "--batch_size=16", "--augmentations=flip", "--early_stopping_patience=0",
              "--warmup_requests=2"]
    search = [*common, "--search=random", "--max_trials=3", "--search_epochs=2", "--epochs=3",
              f"--search_space={space}"]
    two_phase = [*common, "--fine_tune_depth=1", "--epochs=4", "--head_epochs=2",
                 "--learning_rate=0.05", "--deterministic"]
    return {"root": root, "search": search, "two_phase": two_phase}


def _tail(path, lines=40) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def _read(path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _run(args, log_path) -> str:
    """Runs the CLI to completion; returns its output."""
    with open(log_path, "w") as log:
        result = subprocess.run([sys.executable, "-m", "tftransfer.run", *args], cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, timeout=1200)
    assert result.returncode == 0, _tail(log_path)
    return _read(log_path)


def _run_until_killed(point: str, n: int, args, log_path) -> str:
    """Runs the CLI until it pauses at `point` (see run_until_paused.py), then kill -9."""
    marker = f"{log_path}.paused"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, os.path.join(TESTS, "run_until_paused.py"), point, str(n), marker,
             *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 1200  # a hang guard, not a speed requirement
    try:
        while not os.path.exists(marker):
            assert process.poll() is None, f"exited before pausing:\n{_tail(log_path)}"
            assert time.monotonic() < deadline, f"never paused:\n{_tail(log_path)}"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return _read(log_path)


def _without_measurements(value):
    if isinstance(value, dict):
        return {k: _without_measurements(v) for k, v in value.items()
                if not any(word in k for word in MEASURED)}
    if isinstance(value, list):
        return [_without_measurements(v) for v in value]
    return value


def _metrics(output_dir) -> dict:
    with open(os.path.join(output_dir, "metrics.json"), encoding="utf-8") as f:
        return _without_measurements(json.load(f))


def _tree_digest(folder) -> str:
    digest = hashlib.sha1()
    for root, dirs, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def _visible(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


@pytest.fixture(scope="module")
def uninterrupted(flags):
    out = flags["root"] / "uninterrupted"
    _run([*flags["search"], f"--output_dir={out}"], flags["root"] / "uninterrupted.log")
    return out


@pytest.mark.e2e
def test_same_flags_and_seed_give_identical_metrics_on_cpu(flags, uninterrupted):
    again = flags["root"] / "again"
    _run([*flags["search"], f"--output_dir={again}"], flags["root"] / "again.log")
    first, second = _metrics(uninterrupted), _metrics(again)
    assert first["test"]["num_examples"] == 9 and first["training"]["phases"]
    assert first == second
    labels = os.path.join(uninterrupted, "saved_model", "1", "assets", "labels.txt")
    assert _read(labels) == "".join(f"{name}\n" for name in CLASS_NAMES)


def _trial_files(output_dir) -> dict[str, dict]:
    search_dir = os.path.join(output_dir, "search")
    trials = {}
    for name in sorted(os.listdir(search_dir)):
        if name.startswith("trial_") and os.path.isdir(os.path.join(search_dir, name)):
            with open(os.path.join(search_dir, name, "trial.json"), encoding="utf-8") as f:
                trials[name] = json.load(f)
    return trials


@pytest.mark.e2e
def test_kill_during_search_then_rerun_redoes_no_finished_trial(flags, uninterrupted):
    out, logs = flags["root"] / "search_killed", flags["root"]
    command = [*flags["search"], f"--output_dir={out}"]
    _run_until_killed("trial", 3, command, logs / "search_killed.log")
    before = _trial_files(out)
    assert [t["status"] for t in before.values()] == ["COMPLETED", "COMPLETED", "RUNNING"]

    rerun = _run(command, logs / "search_rerun.log")
    ended = re.findall(r"\bTrial (\d+)(?: of \d+)?: ", rerun)  # one line per trial run
    assert ended == ["3"]
    after = _trial_files(out)
    for name in ("trial_0", "trial_1"):  # untouched: same scores, same metrics history
        assert after[name] == before[name]
    with open(os.path.join(out, "search.json"), encoding="utf-8") as f:
        resumed = json.load(f)["trials"]
    with open(os.path.join(uninterrupted, "search.json"), encoding="utf-8") as f:
        reference = json.load(f)["trials"]
    assert _without_measurements(resumed) == _without_measurements(reference)
    assert _metrics(out) == _metrics(uninterrupted)  # the same final model, to the bit


@pytest.fixture(scope="module")
def two_phase(flags, uninterrupted):
    """A two-phase training killed in phase 2, rerun and killed while exporting, rerun to
    the end; an earlier export (version 1) is in its saved_model/ all along."""
    out, logs = flags["root"] / "two_phase", flags["root"]
    shutil.copytree(os.path.join(uninterrupted, "saved_model", "1"),
                    os.path.join(out, "saved_model", "1"))
    previous = _tree_digest(os.path.join(out, "saved_model", "1"))
    command = [*flags["two_phase"], f"--output_dir={out}"]
    state = {"out": out, "previous": previous}
    state["first"] = _run_until_killed("epoch", 3, command, logs / "two_phase_1.log")
    state["backup_after_first"] = sorted(os.listdir(os.path.join(out, "backup")))
    state["second"] = _run_until_killed("export", 0, command, logs / "two_phase_2.log")
    base = os.path.join(out, "saved_model")
    state["after_second"] = {"all": sorted(os.listdir(base)), "visible": _visible(base),
                             "backup": os.path.exists(os.path.join(out, "backup")),
                             "previous": _tree_digest(os.path.join(base, "1"))}
    state["third"] = _run(command, logs / "two_phase_3.log")
    return state


@pytest.mark.e2e
def test_kill_in_phase_two_resumes_from_the_last_epoch(two_phase):
    assert "Epoch 3/4" in two_phase["first"]
    assert two_phase["backup_after_first"] == ["fine_tune", "head", "head.finished.json",
                                               "state.json"]
    resumed = two_phase["second"]
    assert "Phase head had finished before; restored it from its backup" in resumed
    assert "Phase fine_tune resumed from its backup at epoch 4" in resumed
    epochs = [line.split()[1] for line in resumed.splitlines() if line.startswith("Epoch ")]
    assert epochs == ["4/4"]  # no finished epoch trained again
    assert not two_phase["after_second"]["backup"]  # training finished: backup deleted


@pytest.mark.e2e
def test_kill_during_export_keeps_the_previous_export_and_shows_no_partial_one(two_phase):
    base = os.path.join(two_phase["out"], "saved_model")
    after_kill = two_phase["after_second"]
    assert after_kill["visible"] == ["1"]
    assert len(after_kill["all"]) == 2 and after_kill["all"][0].startswith(".")  # staged
    assert after_kill["previous"] == two_phase["previous"]
    # The rerun exports the next version and clears what the killed export left.
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert _tree_digest(os.path.join(base, "1")) == two_phase["previous"]
    assert export_layout.read_class_names(os.path.join(base, "2")) == CLASS_NAMES
    metrics = json.loads(_read(os.path.join(two_phase["out"], "metrics.json")))
    assert [p["name"] for p in metrics["training"]["phases"]] == ["head", "fine_tune"]


def _tiny_classifier(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    classifier = model_lib.build_model(cfg, 3)
    return classifier.backbone, classifier


def test_disk_full_while_exporting_keeps_the_previous_export(tmp_path, tiny_hub_dir,
                                                            color_folder, monkeypatch):
    backbone, classifier = _tiny_classifier(tmp_path, tiny_hub_dir, color_folder)
    base = str(tmp_path / "saved_model")
    export.export_saved_model(classifier, CLASS_NAMES, 24, backbone.module, base)
    previous = _tree_digest(os.path.join(base, "1"))
    save = tf.saved_model.save

    def fills_the_disk(module, staging_dir, **kwargs):
        save(module, staging_dir, **kwargs)  # everything written but the last file
        path = os.path.join(staging_dir, "variables", "variables.data-00000-of-00001")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(tf.saved_model, "save", fills_the_disk)
    with pytest.raises(OSError) as info:
        export.export_saved_model(classifier, CLASS_NAMES, 24, backbone.module, base)
    message = str(as_storage_error(info.value))
    assert "\n" not in message and message.startswith(
        f"No space left on device: {base}{os.sep}.")
    assert message.endswith("; free some space and run the same command again "
                            "(finished search trials and training epochs are kept)")
    assert os.listdir(base) == ["1"] and _tree_digest(os.path.join(base, "1")) == previous


@pytest.mark.parametrize("failure, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/out/metrics.json"),
     "error: No space left on device: /out/metrics.json; free some space"),
    (tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__SaveV2}} "
                                      "/out/x/variables.data; No space left on device"),
     "error: No space left on device: /out/x/variables.data; free some space"),
    (OSError(errno.EROFS, "Read-only file system", "/out/run.log"),
     "error: Read-only file system: /out/run.log; use a writable --output_dir"),
])
def test_the_cli_reports_a_refused_write_in_one_line(tmp_path, tiny_hub_dir, monkeypatch,
                                                     capsys, failure, line):
    cfg = make_config(tmp_path, dataset="mnist", hub_handle=tiny_hub_dir)
    monkeypatch.setattr(run_lib.flags_lib, "config_from_flags", lambda: cfg)
    monkeypatch.setattr(run_lib, "_log_to_file", lambda *args: None)

    def fails(*_):
        raise failure
    monkeypatch.setattr(run_lib, "run", fails)
    with pytest.raises(SystemExit) as exit_info:
        run_lib.main(["tftransfer.run"])
    assert exit_info.value.code == 2
    (printed,) = capsys.readouterr().err.splitlines()
    assert printed.startswith(line) and isinstance(as_storage_error(failure), StorageError)


def test_a_bug_keeps_its_traceback(tmp_path, tiny_hub_dir, monkeypatch):
    cfg = make_config(tmp_path, dataset="mnist", hub_handle=tiny_hub_dir)
    monkeypatch.setattr(run_lib.flags_lib, "config_from_flags", lambda: cfg)
    monkeypatch.setattr(run_lib, "_log_to_file", lambda *args: None)

    def fails(*_):
        raise OSError(errno.ENOENT, "No such file or directory", "/tmp/missing")
    monkeypatch.setattr(run_lib, "run", fails)
    with pytest.raises(OSError):
        run_lib.main(["tftransfer.run"])


def test_an_export_after_a_killed_one_clears_its_leftovers(tmp_path, tiny_hub_dir,
                                                          color_folder):
    """Killed mid-replace of version 1 (moved aside, not yet replaced) and mid-staging of 2."""
    backbone, classifier = _tiny_classifier(tmp_path, tiny_hub_dir, color_folder)
    base = str(tmp_path / "saved_model")
    export.export_saved_model(classifier, CLASS_NAMES, 24, backbone.module, base)
    previous = _tree_digest(os.path.join(base, "1"))
    os.rename(os.path.join(base, "1"), os.path.join(base, ".retired-1-0123abcd"))
    os.makedirs(os.path.join(base, ".staging-2-89abcdef", "variables"))
    export.export_saved_model(classifier, CLASS_NAMES, 24, backbone.module, base)
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert _tree_digest(os.path.join(base, "1")) == previous


def test_two_runs_on_one_output_folder_give_one_run_and_one_clear_line(flags, tmp_path):
    out = tmp_path / "shared"
    args = [sys.executable, "-m", "tftransfer.run", *flags["two_phase"], f"--output_dir={out}"]
    runs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=1200) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], [err[-2000:] for _, err in outputs]
    refused = next(err for run, (_, err) in zip(runs, outputs) if run.returncode == 2)
    last = refused.strip().splitlines()[-1]
    assert last.startswith(f"error: --output_dir {out} is in use by host ")
    assert "Traceback" not in refused
    assert os.path.isfile(os.path.join(out, "metrics.json"))
