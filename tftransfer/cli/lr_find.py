"""`python -m tftransfer.lr_find --flagfile=F [--flag=value ...]`: the learning-rate range
test on the run's own model and data. Writes lr_find.json and lr_find.png into
--output_dir and prints the suggested --learning_rate. `--learning_rate=find` runs the
same test at the start of a run and trains with its suggestion.
"""
from __future__ import annotations

import dataclasses
import os

from tftransfer.cli import common, flags as flags_lib
from tftransfer.outputs import files as atomic, run_folder


def find(cfg, data, strategy):
    """The range test on `cfg`'s model and `data`, written into cfg.output_dir."""
    from tftransfer.model import classifier as model_lib
    from tftransfer.report import plots
    from tftransfer.train import lr_range

    with strategy.scope():
        classifier = model_lib.build_model(cfg, data.num_classes)
        found = lr_range.run_range_test(classifier, classifier.backbone, data.train,
                                        data.num_classes, cfg)
    atomic.write_json(os.path.join(cfg.output_dir, run_folder.LR_FIND_JSON), found.to_dict(),
                      indent=2)
    atomic.write_bytes(os.path.join(cfg.output_dir, run_folder.LR_FIND_PNG),
                       plots.learning_rate_range(found.rates, found.losses, found.suggestion))
    return found


def with_found_rate(cfg, data, strategy):
    """`cfg` with --learning_rate=find replaced by the range test's suggestion."""
    found = find(cfg, data, strategy)
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, learning_rate=found.suggestion))


def main(argv) -> None:
    if len(argv) > 1:
        common.fail(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    with common.user_errors():
        cfg = flags_lib.config_from_flags()
        common.start_tensorflow()
        from tftransfer.cli.run import start_strategy
        from tftransfer.data import pipeline as data_lib

        strategy = start_strategy(cfg)
        data = data_lib.load_data(cfg.data, cfg.seed,
                                  os.path.join(cfg.output_dir, run_folder.CACHE),
                                  strategy.num_replicas_in_sync)
        found = find(cfg, data, strategy)
    print(f"suggested --learning_rate={found.suggestion:.2g} (range test over "
          f"{len(found.rates)} steps: {os.path.join(cfg.output_dir, run_folder.LR_FIND_PNG)})")


def entry_point() -> None:
    common.start(main, flags_lib.define_flags)


if __name__ == "__main__":
    entry_point()
