"""Search trial time of a frozen head re-running the backbone / the same trial on cached features.

Both sides run one KerasTuner trial through tftransfer's own search code
(search.TransferHyperModel, tuners.make_tuner): the same fixed hyperparameters (frozen
backbone, no augmentation, the config's defaults), the same epochs (--search_epochs,
default 3), batch size, and a validation pass every epoch. The only difference is whether
the trial gets the features cached by features.FeatureCache. A trial's time is the wall time
the tuner records for it (as in search.json): building the model, tracing, training,
validating and KerasTuner's bookkeeping. Real data: Fashion-MNIST, Lite0 at --image_size.
The one-time extraction (both splits through the backbone) is timed apart, and so is how
many trials repay it.

    python3 benchmarks/feature_cache.py [--quick] [--examples=60000] [--image_size=48]
"""
from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import time

import _common


def _add_arguments(parser) -> None:
    parser.add_argument("--examples", type=int, default=60000,
                        help="training examples taken (10%% held out for validation)")
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--search_epochs", type=int, default=3)


def _fixed_space(cfg) -> dict:
    """The trial's hyperparameters: the config's own values, frozen and unaugmented."""
    from tftransfer.config import run_config as config_lib
    from tftransfer.search import space as search_space

    flat = config_lib.to_flat(cfg)
    values = {name: flat[name] for name in search_space.SEARCHABLE}
    values.update(fine_tune_depth=0, augment=False,
                  head_units=",".join(str(u) for u in flat["head_units"]))
    return {name: search_space.Fixed(value) for name, value in values.items()}


def _trial_seconds(cfg, space, inputs, width, module, name: str) -> float:
    """Runs one trial in a fresh tuner folder; returns the seconds the tuner recorded."""
    import keras
    import tensorflow as tf

    from tftransfer.search import tuners, tuning as search

    trial_cfg = dataclasses.replace(cfg, output_dir=_common.scratch_dir(name))
    hypermodel = search.TransferHyperModel(trial_cfg, space, inputs, width, module)
    tuner = tuners.make_tuner(trial_cfg, hypermodel, tf.distribute.get_strategy(),
                               search.OBJECTIVE)
    tuner.search(callbacks=[keras.callbacks.TensorBoard(
        os.path.join(trial_cfg.output_dir, "tensorboard", "search"))], verbose=0,
        epochs=cfg.search.search_epochs)
    (run,) = tuner.trial_runs().values()
    return run["seconds"]


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    examples = 1280 if args.quick else args.examples
    epochs = 1 if args.quick else args.search_epochs
    image_size = 32 if args.quick else args.image_size
    _common.print_machine()
    cfg = _common.real_config(train_split=f"train[:{examples}]", image_size=image_size,
                              batch_size=64, search="random", max_trials=1,
                              search_epochs=epochs, overwrite=True)
    from tftransfer.data import pipeline as data_lib
    from tftransfer.model import backbone as backbone_lib, classifier as model_lib
    from tftransfer.search import inputs as inputs_lib

    data = data_lib.load_data(cfg.data, cfg.seed, "")   # decoded into the memory cache
    module = backbone_lib.load_module(cfg.backbone.hub_handle)
    backbone, width = model_lib.build_backbone(cfg.backbone, image_size, module)
    space = _fixed_space(cfg)
    start = time.perf_counter()
    with_cache = inputs_lib.SearchInputs(cfg, data, space, 1, backbone)
    assert with_cache.at(data.image_size).cached is not None   # extracts both splits
    extraction = time.perf_counter() - start
    with_backbone = copy.copy(with_cache)
    with_backbone.by_size = {size: dataclasses.replace(prepared, extract=None)
                             for size, prepared in with_cache.by_size.items()}

    def cached_trials():  # cheap: several, around the one with the backbone
        return [_trial_seconds(cfg, space, with_cache, width, module, "cached")
                for _ in range(1 if args.quick else 2)]

    cached_seconds = cached_trials()
    backbone_seconds = _trial_seconds(cfg, space, with_backbone, width, module, "backbone")
    cached_seconds += cached_trials()
    per_trial_cached = statistics.median(cached_seconds)
    saved = backbone_seconds - per_trial_cached
    print(f"data: {data.sizes} at {image_size} px, batch {cfg.data.batch_size}, "
          f"{epochs} epoch(s) per trial with validation")
    print(f"trial with the backbone: {backbone_seconds:.2f} s; with cached features: "
          + ", ".join(f"{s:.2f} s" for s in cached_seconds))
    print(f"one-time extraction: {extraction:.2f} s, repaid after "
          f"{extraction / max(saved, 1e-9):.2f} trial(s)")
    ratio = backbone_seconds / per_trial_cached
    _common.goal(extraction <= 2 * saved, "extraction repaid by the second trial")
    _common.goal(ratio >= 50, ">= 50x")
    _common.report("feature_cache", ratio)


if __name__ == "__main__":
    main()
