"""--help prints each command's usage and examples (its entry module's docstring, as absl
prints it) without starting TensorFlow; --helpfull prints every flag."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from test_common import CPP_LINE

pytestmark = pytest.mark.e2e


def _help(module: str, flag: str = "--help") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", module, flag], capture_output=True,
                          text=True, env=env, timeout=120)


def test_run_help_prints_usage_main_flags_and_examples():
    result = _help("tftransfer.run")
    assert result.returncode in (0, 1)  # absl's --help exits with 1
    out = result.stdout
    assert out.startswith("Transfer learning in one command")
    assert "Usage: python -m tftransfer.run --dataset=DATA" in out
    assert "Main flags:" in out and "--time_budget" in out and "--backbone" in out
    assert "Examples:" in out
    assert "python -m tftransfer.run --flagfile=experiments/quickstart.flags" in out
    assert "--helpfull" in out
    assert "see tftransfer/cli/run.py" not in out  # no longer the module's internal note
    assert "--ema_momentum" not in out  # the full list is --helpfull's
    assert not CPP_LINE.search(result.stdout + result.stderr)


def test_run_helpfull_prints_every_flag():
    out = _help("tftransfer.run", "--helpfull").stdout
    for flag in ("--ema_momentum", "--block_pattern", "--robustness_pgd_steps"):
        assert flag in out


@pytest.mark.parametrize("module", ["tftransfer.predict", "tftransfer.evaluate",
                                    "tftransfer.report", "tftransfer.assets"])
def test_every_command_prints_its_usage(module):
    out = _help(module).stdout
    assert f"Usage: python -m {module}" in out
