"""The issue's acceptance check on a tiny run: in a pipe, no TensorFlow C++ line and one
line per epoch; under a pseudo-terminal, Keras's progress bar with its ETA."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading

import pytest

from conftest import REPO
from test_common import CPP_LINE

pytestmark = pytest.mark.e2e

EPOCHS = 2
# Keras's bar: "\r", a bold "1/5", the bar, then a bold time: the ETA while the epoch runs
# (step 1 of 5), the time taken once it ended (5 of 5).
BAR = re.compile(r"\r\x1b\[1m\s*(\d+)/(\d+)\x1b\[0m [^\r\n]*?\x1b\[1m\d+s\x1b\[0m")


def _args(tmp_path, tiny_hub_dir, color_folder) -> list[str]:
    return [sys.executable, "-m", "tftransfer.run", f"--dataset={color_folder}",
            f"--hub_handle={tiny_hub_dir}", "--image_size=24", f"--epochs={EPOCHS}",
            "--head_epochs=1", "--fine_tune_depth=1", "--batch_size=16",
            f"--output_dir={tmp_path / 'out'}"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_in_a_pipe_a_run_prints_one_line_per_epoch_and_no_cpp_line(tmp_path, tiny_hub_dir,
                                                                   color_folder):
    result = subprocess.run(_args(tmp_path, tiny_hub_dir, color_folder), capture_output=True,
                            text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not CPP_LINE.search(result.stdout + result.stderr), result.stderr[:2000]
    # Keras heads an epoch with "Epoch 2/2" when its fit() runs more than one (the
    # head phase's single epoch has none), then writes one line when it ends.
    lines = [line for line in result.stdout.splitlines() if not re.fullmatch(
        r"Epoch \d+/\d+", line)]
    assert len(lines) == EPOCHS, result.stdout
    for line in lines:
        assert re.match(r"\d+/\d+ - \d+s - .* - loss: .* - val_loss: ", line), line
    assert "\r" not in result.stdout and "\x1b[" not in result.stdout


def _read_all(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        chunks.append(chunk)


def test_under_a_terminal_a_run_shows_a_progress_bar_with_eta(tmp_path, tiny_hub_dir,
                                                             color_folder):
    controller, terminal = pty.openpty()
    process = subprocess.Popen(_args(tmp_path, tiny_hub_dir, color_folder), stdout=terminal,
                               stderr=subprocess.PIPE, env=_env())
    os.close(terminal)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(controller, chunks), daemon=True)
    reader.start()
    _, stderr = process.communicate(timeout=600)
    reader.join(timeout=30)
    os.close(controller)
    shown = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert not CPP_LINE.search(shown + stderr.decode())
    steps = [(int(done), int(total)) for done, total in BAR.findall(shown)]
    assert any(done < total for done, total in steps), shown[-2000:]  # an ETA was shown
    assert "Epoch 2/2" in shown
