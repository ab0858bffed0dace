"""Actual wall time / --time_budget of `python -m tftransfer.run --dataset=FOLDER
--hub_handle=LITE0 --time_budget=B` and nothing else, for budgets of 2, 5 and 10 minutes
(the aim: between 0.85 and 1.0 for each).

FOLDER is a folder dataset made from the offline Fashion-MNIST (benchmarks/_folders.py
`coarse`: 4 class groups, 100 training images each, 64 px RGB with a random tint), read at
the default resolution as a user who names only a folder would. Each budget runs as its own
process, in turn; wall time is the process's, start-up included. The ratio printed last is
the worst of the three (the one furthest from 1.0 in either direction). --quick: one 120 s
budget at 32 px on a smaller folder.

    python3 benchmarks/budget.py [--quick] [--budgets=2m,5m,10m]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import _common
import _folders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _add_arguments(parser) -> None:
    parser.add_argument("--budgets", default="2m,5m,10m")


def _run(folder: str, handle: str, budget: str, extra: list[str]) -> tuple[float, dict]:
    output_dir = _common.scratch_dir("budget")
    command = [sys.executable, "-m", "tftransfer.run", f"--dataset={folder}",
               f"--hub_handle={handle}", f"--time_budget={budget}",
               f"--output_dir={output_dir}", *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        ROOT, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if finished.returncode == 2:  # a one-line error, e.g. a budget too small: reported
        return seconds, {"error": finished.stderr.strip().splitlines()[-1]}
    if finished.returncode != 0:
        sys.exit(f"--time_budget={budget} failed ({finished.returncode}):\n"
                 f"{finished.stderr[-3000:]}")
    with open(os.path.join(output_dir, "metrics.json"), encoding="utf-8") as f:
        return seconds, json.load(f)


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    _common.print_machine()
    from tftransfer import assets
    from tftransfer.config import budget as budget_lib

    handle = assets.build_all()["hub_handle"]
    per_class, extra, budgets = 100, [], args.budgets.split(",")
    if args.quick:
        per_class, extra, budgets = 40, ["--image_size=32"], ["120s"]
    folder = _folders.make("coarse", _common.scratch_dir("folder"), per_class)
    ratios = []
    for budget in budgets:
        seconds, metrics = _run(folder, handle, budget, extra)
        ratio = seconds / budget_lib.parse_duration(budget)
        if "error" in metrics:
            print(f"budget {budget}: exit 2 after {seconds:.0f} s: {metrics['error']}")
            ratios.append(ratio)
            continue
        account = metrics["budget"]
        print(f"budget {budget}: wall {seconds:.0f} s, ratio {ratio:.2f}; "
              f"{account['plan']['trials']} trials planned, "
              f"{account['final_epochs']} final epochs; test accuracy "
              f"{metrics['test']['accuracy'] * 100:.1f} %; stages "
              f"{ {k: v['actual'] for k, v in account['stages'].items()} }", flush=True)
        ratios.append(ratio)
    _common.goal(all(0.85 <= r <= 1.0 for r in ratios), "0.85 <= wall / budget <= 1.0 each")
    _common.report("budget", max(ratios, key=lambda r: abs(1 - r)))


if __name__ == "__main__":
    main()
