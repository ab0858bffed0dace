"""The learning-rate range test from its command and inside a run (--learning_rate=find)."""
import json
import os
import subprocess
import sys

import pytest
from conftest import make_config

from tftransfer.cli import run as run_lib

pytestmark = pytest.mark.e2e  # a subprocess and a whole run


def test_the_command_writes_the_curve_and_prints_a_rate(tmp_path, tiny_hub_dir, color_folder):
    result = subprocess.run(
        [sys.executable, "-m", "tftransfer.lr_find", f"--dataset={color_folder}",
         f"--hub_handle={tiny_hub_dir}", "--image_size=24", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.load(open(tmp_path / "lr_find.json"))
    assert result.stdout.startswith(
        f"suggested --learning_rate={found['suggested_learning_rate']:.2g} ")
    assert os.path.getsize(tmp_path / "lr_find.png") > 1000
    assert len(found["rates"]) == len(found["losses"]) >= 3


def test_a_run_trains_at_the_suggested_rate(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      learning_rate="find", fine_tune_depth=1)
    outputs = run_lib.run(cfg)
    suggestion = json.load(open(tmp_path / "lr_find.json"))["suggested_learning_rate"]
    assert json.load(open(tmp_path / "config.json"))["train"]["learning_rate"] == suggestion
    assert outputs.metrics["lr_find"]["suggested_learning_rate"] == suggestion
    report = open(tmp_path / "report.md").read()
    assert "Learning-rate range test" in report and f"{suggestion:.2g} used" in report
