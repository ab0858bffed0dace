"""Training-recipe options, each off against on, side by side in one run, on two folder
datasets of other kinds than the quickstart's; the ratio printed last is on ÷ off of the
first option's metric on the first dataset (the aim for each: > 1).

| option | off / on | folders | metric |
|---|---|---|---|
| class_weight | none / balanced | long-tailed 10:1 (training and validation), test balanced | test balanced accuracy |
| ema | --ema=false / true | balanced | test accuracy |

Folders come from the offline Fashion-MNIST (benchmarks/_folders.py): `fashion` (10
classes, 28 px grey) and `coarse` (4 class groups, 64 px RGB tinted). Every run is
`python -m tftransfer.run` with one fixed recipe (no search, 96 px, one head epoch, then
the top 2 blocks), the option's flag appended. --quick: the first folder only, small,
at 48 px for 2 epochs.

    python3 benchmarks/recipe.py [--quick] [--options=class_weight,ema]
"""
from __future__ import annotations

import _common
import _folders

RECIPE = ["--search=none", "--image_size=96", "--epochs=4", "--head_epochs=1",
          "--fine_tune_depth=2", "--augment=false"]
QUICK = ["--image_size=48", "--epochs=2"]
# option: (folders' imbalance, the flag's off and on values, the test metric compared)
OPTIONS = {"class_weight": (10.0, ("none", "balanced"), "balanced_accuracy"),
           "ema": (1.0, ("false", "true"), "accuracy")}
PER_CLASS = {"fashion": 300, "coarse": 200}


def _add_arguments(parser) -> None:
    parser.add_argument("--options", default=",".join(OPTIONS))


def _compare(option: str, kind: str, handle: str, quick: bool) -> float:
    imbalance, values, metric = OPTIONS[option]
    per_class = PER_CLASS[kind] // (6 if quick else 1)
    folder = _folders.make(kind, _common.scratch_dir(kind), per_class, imbalance=imbalance)
    scores = []
    for value in values:
        flags = [f"--dataset={folder}", f"--hub_handle={handle}", *RECIPE,
                 *(QUICK if quick else []), f"--{option}={value}"]
        seconds, metrics = _common.run_tftransfer(option, flags)
        test = metrics["test"]
        scores.append(test[metric])
        print(f"{option}, {kind} ({metrics['data']['sizes']['train']} train, "
              f"{imbalance:g}:1) --{option}={value}: {metric} {test[metric]:.4f}, accuracy "
              f"{test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} ({seconds:.0f} s)",
              flush=True)
    print(f"{option}, {kind}: on / off = {scores[1] / scores[0]:.3f}", flush=True)
    return scores[1] / scores[0]


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    _common.print_machine()
    from tftransfer import assets

    handle = assets.build_all()["hub_handle"]
    kinds = list(PER_CLASS)[:1] if args.quick else list(PER_CLASS)
    ratios = {(option, kind): _compare(option, kind, handle, args.quick)
              for option in args.options.split(",") for kind in kinds}
    for option in args.options.split(","):
        _common.goal(all(r > 1 for (o, _), r in ratios.items() if o == option),
                     f"--{option} raises its metric on each dataset")
    _common.report("recipe", next(iter(ratios.values())))


if __name__ == "__main__":
    main()
