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

import _common
import _folders


def _add_arguments(parser) -> None:
    parser.add_argument("--budgets", default="2m,5m,10m")


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
        seconds, metrics = _common.run_tftransfer(
            "budget", [f"--dataset={folder}", f"--hub_handle={handle}",
                       f"--time_budget={budget}", *extra], tolerate_user_error=True)
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
