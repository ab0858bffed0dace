"""experiments/quickstart.flags as shipped (searching within its 20-minute budget) and, side
by side in the same script, the same budget with --search=none: test accuracy and wall
time of each (the aim: >= 94 % test accuracy within 20 minutes on 2 cores, stretch 94.5 %,
and the searched run not below the unsearched one).

Runs `python -m tftransfer.run --flagfile=experiments/quickstart.flags [--search=none]` as
subprocesses into scratch --output_dirs (the assets are built first, outside the timing),
one after the other, and reads each test accuracy from its metrics.json. The ratio printed
last is the searched run's wall time / its budget. --quick appends a tiny override (a few
hundred images at 32 px, a 120 s budget) for a smoke run.

    python3 benchmarks/quickstart.py [--quick]
"""
from __future__ import annotations

import _common

BUDGET_SECONDS = 20 * 60
QUICK_FLAGS = ["--train_split=train[:1024]", "--validation_split=train[-256:]",
               "--test_split=test[:256]", "--image_size=32", "--time_budget=120s"]
SIDES = {"searched": [], "unsearched": ["--search=none"]}


def main() -> None:
    args = _common.arguments(__doc__)
    _common.print_machine()
    from tftransfer import assets

    assets.build_all()
    budget = 120 if args.quick else BUDGET_SECONDS
    results = {}
    for side, extra in SIDES.items():
        flags = ["--flagfile=experiments/quickstart.flags", *extra,
                 *(QUICK_FLAGS if args.quick else [])]
        print("command: -m tftransfer.run", " ".join(flags), flush=True)
        seconds, metrics = _common.run_tftransfer("quickstart", flags)
        accuracy = metrics["test"]["accuracy"]
        plan = metrics.get("budget", {}).get("plan", {})
        print(f"{side}: wall {seconds / 60:.1f} min ({seconds / budget:.2f} of the budget); "
              f"test accuracy {accuracy * 100:.2f} %; {plan.get('trials', 0)} trials planned, "
              f"{metrics.get('budget', {}).get('final_epochs')} final epochs", flush=True)
        results[side] = (seconds, accuracy)
    (seconds, accuracy), (_, unsearched) = results["searched"], results["unsearched"]
    _common.goal(accuracy >= 0.94 and seconds <= budget,
                 f">= 94 % test accuracy within {budget / 60:g} min")
    _common.goal(accuracy >= 0.945, "(stretch) >= 94.5 % test accuracy")
    _common.goal(accuracy >= unsearched, "searched >= unsearched on the same budget")
    _common.report("quickstart", seconds / budget)


if __name__ == "__main__":
    main()
