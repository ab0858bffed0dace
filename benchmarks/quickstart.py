"""Wall time and test accuracy of experiments/quickstart.flags; its wall time / the 20-minute
budget (the aim: >= 94 % test accuracy in <= 20 minutes on 2 cores).

Runs `python -m tftransfer.run --flagfile=experiments/quickstart.flags` as a subprocess
into a scratch --output_dir (the assets are built first, outside the timing) and reads
the test accuracy from its metrics.json. --quick appends a tiny override (a few hundred
images at 32 px, no search, 2 short epochs) for a smoke run.

    python3 benchmarks/quickstart.py [--quick]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import _common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_SECONDS = 20 * 60
QUICK_FLAGS = ["--train_split=train[:512]", "--test_split=test[:256]", "--image_size=32",
               "--search=none", "--epochs=2", "--head_epochs=1"]


def main() -> None:
    args = _common.arguments(__doc__)
    _common.print_machine()
    from tftransfer import assets

    assets.build_all()
    output_dir = _common.scratch_dir("quickstart")
    command = [sys.executable, "-m", "tftransfer.run",
               "--flagfile=experiments/quickstart.flags", f"--output_dir={output_dir}",
               *(QUICK_FLAGS if args.quick else [])]
    print("command:", " ".join(command[1:]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        ROOT, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if finished.returncode != 0:
        sys.exit(f"the run failed ({finished.returncode}):\n{finished.stderr[-3000:]}")
    with open(os.path.join(output_dir, "metrics.json"), encoding="utf-8") as f:
        accuracy = json.load(f)["test"]["accuracy"]
    print(f"wall time {seconds / 60:.1f} min; test accuracy {accuracy * 100:.1f} %")
    _common.goal(accuracy >= 0.94 and seconds <= BUDGET_SECONDS,
                 ">= 94 % test accuracy in <= 20 min")
    _common.report("quickstart", seconds / BUDGET_SECONDS)


if __name__ == "__main__":
    main()
