"""What every command shares: TensorFlow's C++ log level is set before TensorFlow is
imported, its start-up lines are hidden, and a user's own level wins (subprocesses)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.e2e

# A C++ log line ("E0000 00:00:1796246300.028879 8869 cuda_platform.cc:52] ..."), or absl's
# notice before its log is set up. (absl's Python log lines look alike, from .py files.)
CPP_LINE = re.compile(r"^[IWEF]\d{4} [^\n]*\.(cc|h):\d+\]|absl::InitializeLog", re.MULTILINE)

COMMAND = """
import os, sys
from tftransfer.cli import common

def main(argv):
    print("tensorflow imported before main:", "tensorflow" in sys.modules)
    print("level:", os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
    common.start_tensorflow()
    import tensorflow as tf
    print("sum:", int(tf.constant(1) + 1))

common.start(main, lambda: None)
"""


def _command(**environ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True,
                          env={**env, **environ}, timeout=300)


def test_tensorflow_starts_without_its_cpp_lines():
    result = _command()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tensorflow imported before main: False" in result.stdout
    assert "level: 3" in result.stdout
    assert "sum: 2" in result.stdout
    assert not CPP_LINE.search(result.stderr), result.stderr


def test_a_users_own_log_level_wins():
    result = _command(TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "level: 0" in result.stdout
    assert "sum: 2" in result.stdout
