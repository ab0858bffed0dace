"""Wall time of the default search to come within 0.5 point of the best of a full random
search over the same space / that random search's time.

Definitions:
- The space is tftransfer's default (search_space.default_space with the hyperrule.py
  prior for the split's size: head, dropout, L2, label smoothing, optimizer, learning
  rate), with the backbone frozen (a --search_space override fixing fine_tune_depth to 0,
  augmentation off), so every trial trains a head on cached features: tractable on two
  CPU cores.
- The default search is `--search=hyperband` with every other search flag at its default
  (--search_epochs=3 as Hyperband's max_epochs, factor 3): tftransfer's budget-adaptive
  tuner, whose budget follows from --search_epochs alone.
- The full random search is `--search=random` with --max_trials=--random_trials (default
  30, three times the default --max_trials) of --search_epochs each.
- Both start, as every tftransfer search does, with the space's starting point (each
  choice's first value, each range's start: search_space.py); the random search then
  draws the rest at random, and its best is the target.
- Both run through search.run_search, as `python -m tftransfer.run` runs them. Time is the
  sum of the trials' seconds recorded in search.json, in the order the trials ran; the
  default search's time counts up to the end of its first trial whose validation accuracy
  is within 0.5 point of the random search's best.

- Trials are scored on a separate validation split of --validation_examples (default
  10k) from the end of Fashion-MNIST's training split: with the 1k images a 10 % hold-out
  gives, one trial's accuracy has a standard error of ~1 point, and the random search's
  best is its luckiest draw rather than its best configuration.

Then the rank correlation (Spearman) of trial scores with full-training scores, on two
datasets: the Fashion-MNIST subset above and a folder dataset (benchmarks/_folders.py
`coarse`: 4 class groups, another resolution and colours). A random search of
--rank_trials trials runs at a budgeted run's fidelity (2 epochs, one of them fine-tuning
when the trial fine-tunes, on --rank_fraction of the training split; the default space for
the data's size, augmentation off), then each completed trial's configuration is trained
as the final training would (all of the training split, --epochs=--rank_epochs, best
epoch restored) and scored on the same validation split. A correlation near 1 means the
cheap trials rank configurations as the full training does.

    python3 benchmarks/search.py [--quick] [--examples=10000] [--validation_examples=10000]
        [--random_trials=30] [--rank_only] [--rank_trials=8] [--rank_fraction=0.25]
        [--rank_epochs=4]
"""
from __future__ import annotations

import dataclasses
import json
import os

import _common

WITHIN = 0.005  # half a percentage point of accuracy


def _add_arguments(parser) -> None:
    parser.add_argument("--examples", type=int, default=10000,
                        help="training examples, from the start of the training split")
    parser.add_argument("--validation_examples", type=int, default=10000,
                        help="validation examples, from the end of the training split")
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--random_trials", type=int, default=30)
    parser.add_argument("--tuner", default="hyperband", choices=("hyperband", "bayesian"),
                        help="the search compared with random search")
    parser.add_argument("--rank_only", action="store_true",
                        help="only the rank correlation (no ratio line: not for the tests)")
    parser.add_argument("--rank_trials", type=int, default=8)
    parser.add_argument("--rank_fraction", type=float, default=0.25)
    parser.add_argument("--rank_epochs", type=int, default=4)


def _fully_trained_score(cfg, data, values: dict) -> float:
    """The best validation accuracy of the final training of a trial's values."""
    import tensorflow as tf

    from tftransfer.model import classifier as model_lib
    from tftransfer.search import tuning as search
    from tftransfer.train import training as train_lib

    final = search.apply_values(dataclasses.replace(
        cfg, output_dir=_common.scratch_dir("full")), values)
    tf.keras.backend.clear_session()
    classifier = model_lib.build_model(final, data.num_classes)
    return train_lib.train(classifier, classifier.backbone, data, final).best_validation_accuracy


def _rank_correlation(name: str, cfg, data, trials: int, fraction: float) -> float:
    from scipy import stats

    space_file = os.path.join(_common.scratch_dir("space"), "no_augment.json")
    with open(space_file, "w", encoding="utf-8") as f:
        json.dump({"augment": False}, f)
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, search_space=space_file))
    searched = _search(cfg, data, "random", max_trials=trials, search_epochs=2,
                       search_fraction=fraction)
    pairs = [(t["score"], _fully_trained_score(cfg, data, t["hyperparameters"]))
             for t in searched]
    for (trial, full), t in zip(pairs, searched):
        values = t["hyperparameters"]
        print(f"  {name}: trial {trial:.4f} -> full {full:.4f} (depth "
              f"{values.get('fine_tune_depth')}, {values.get('optimizer')})", flush=True)
    rho = stats.spearmanr(*zip(*pairs)).statistic if len(pairs) > 2 else float("nan")
    print(f"rank correlation on {name} ({len(pairs)} trials on {fraction:.0%} of "
          f"{data.sizes['train']} examples, 2 epochs; full: {cfg.train.epochs} epochs): "
          f"Spearman {rho:.2f}", flush=True)
    return rho


def _rank_on_two_datasets(args, size: int) -> None:
    import _folders

    from tftransfer.data import pipeline as data_lib

    trials, fraction, epochs, examples, per_class = (
        (3, 0.5, 1, 320, 40) if args.quick else
        (args.rank_trials, args.rank_fraction, args.rank_epochs, args.examples, 300))
    fashion = _common.real_config(train_split=f"train[:{examples}]",
                                  validation_split=f"train[-{args.validation_examples}:]"
                                  if not args.quick else "train[-320:]",
                                  image_size=size, batch_size=64, epochs=epochs, head_epochs=1,
                                  early_stopping_patience=0)
    folder = _folders.make("coarse", _common.scratch_dir("coarse"), per_class)
    coarse = _common.real_config(dataset=folder, data_dir="", image_size=size, batch_size=32,
                                 epochs=epochs, head_epochs=1, early_stopping_patience=0)
    for name, cfg in (("fashion_mnist", fashion), ("coarse folder", coarse)):
        data = data_lib.load_data(cfg.data, cfg.seed, "")
        _rank_correlation(name, cfg, data, trials, fraction)


def _search(cfg, data, tuner: str, **flags):
    """Runs one search in a fresh folder; returns its trials in the order they ran."""
    import tensorflow as tf

    from tftransfer.search import tuning as search

    cfg = dataclasses.replace(cfg, output_dir=_common.scratch_dir(tuner), search=dataclasses
                              .replace(cfg.search, search=tuner, **flags))
    result = search.run_search(cfg, data, tf.distribute.get_strategy())
    trials = sorted(result.trials, key=lambda t: t["trial_id"])
    return [t for t in trials if t["score"] is not None]


def _print_top(name: str, trials, count: int = 5) -> None:
    shown = ("optimizer", "learning_rate", "sgd_learning_rate", "head_units", "dropout", "l2",
             "label_smoothing", "tuner/epochs")
    for trial in sorted(trials, key=lambda t: -t["score"])[:count]:
        values = trial["hyperparameters"]
        print(f"  {name} {trial['score']:.4f}: " + ", ".join(
            f"{key}={values[key]:.3g}" if isinstance(values[key], float) else
            f"{key}={values[key]}" for key in shown if key in values))


def _cumulative(trials) -> list[tuple[float, float]]:
    """(seconds so far, best score so far) after each trial."""
    elapsed, best, curve = 0.0, 0.0, []
    for trial in trials:
        elapsed += trial["seconds"]
        best = max(best, trial["score"])
        curve.append((elapsed, best))
    return curve


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    examples, validation, size, trial_count, epochs = (640, 320, 32, 3, 1) if args.quick \
        else (args.examples, args.validation_examples, args.image_size, args.random_trials, 3)
    _common.print_machine()
    if args.rank_only:
        _rank_on_two_datasets(args, size)
        return
    space_file = os.path.join(_common.scratch_dir("space"), "frozen.json")
    with open(space_file, "w", encoding="utf-8") as f:
        json.dump({"fine_tune_depth": 0}, f)
    cfg = _common.real_config(train_split=f"train[:{examples}]",
                              validation_split=f"train[-{validation}:]", image_size=size,
                              batch_size=64, search_space=space_file, search_epochs=epochs)
    from tftransfer.data import pipeline as data_lib

    data = data_lib.load_data(cfg.data, cfg.seed, "")
    random_trials = _search(cfg, data, "random", max_trials=trial_count)
    default_trials = _search(cfg, data, args.tuner)
    _print_top("random", random_trials)
    _print_top(args.tuner, default_trials)
    full, default = _cumulative(random_trials), _cumulative(default_trials)
    random_seconds, target = full[-1][0], full[-1][1] - WITHIN
    reached = next((seconds for seconds, best in default if best >= target), None)
    print(f"data: {data.sizes} at {size} px, frozen backbone, {epochs} epoch(s) per trial")
    print(f"random search: {len(full)} trials, best {full[-1][1]:.4f}, {random_seconds:.1f} s; "
          f"best without its first trial (the starting point): "
          f"{max((t['score'] for t in random_trials[1:]), default=float('nan')):.4f}")
    print(f"{args.tuner}: {len(default)} trials, best {default[-1][1]:.4f}, "
          f"{default[-1][0]:.1f} s; within 0.5 point after "
          + (f"{reached:.1f} s" if reached is not None else "never (ratio below: its whole run)"))
    ratio = (reached if reached is not None else default[-1][0]) / random_seconds
    _rank_on_two_datasets(args, size)
    _common.goal(reached is not None and ratio <= 0.2, "<= 0.2")
    _common.report("search", ratio)


if __name__ == "__main__":
    main()
