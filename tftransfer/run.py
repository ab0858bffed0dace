"""`python -m tftransfer.run --flagfile=F [--flag=value ...]`: one transfer-learning run.

Wires the stages: flags -> config -> data -> model -> train -> evaluate -> export.
A UserError (bad flag, data or handle) ends the run with one line and exit status 2.
"""
from __future__ import annotations

import dataclasses
import json
import logging as std_logging
import os
import sys

from absl import app, logging

from tftransfer import flags as flags_lib
from tftransfer.errors import UserError

flags_lib.define_flags()


def _log_to_file(output_dir: str) -> None:
    handler = std_logging.FileHandler(os.path.join(output_dir, "run.log"))
    handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.get_absl_logger().addHandler(handler)


def _write_json(path: str, payload) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)


@dataclasses.dataclass
class RunOutputs:
    metrics: dict
    classifier: object      # keras.Model
    data: object            # data.DataBundle
    export_dir: str


def run(cfg) -> RunOutputs:
    """Runs every stage for a validated config; writes the outputs to cfg.output_dir."""
    import keras  # heavy imports only after the config is known to be valid
    from tftransfer import data as data_lib, distribute, evaluate, export, model as model_lib
    from tftransfer import performance
    from tftransfer import train as train_lib

    keras.utils.set_random_seed(cfg.seed)
    if cfg.train.mixed_precision:
        import tensorflow as tf
        gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")
    strategy = distribute.make_strategy(cfg.strategy, cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, os.path.join(cfg.output_dir, "cache"),
                              strategy.num_replicas_in_sync)
    with open(os.path.join(cfg.output_dir, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in data.class_names))
    chosen = None
    if cfg.search.search != "none":
        from tftransfer import search
        chosen = search.run_search(cfg, data, strategy).best_values
        cfg = search.apply_values(cfg, chosen)
        batch = data_lib.replica_safe_batch_size(cfg.data.batch_size, data.sizes["train"],
                                                 strategy.num_replicas_in_sync)
        data.train = data_lib.training_pipeline(data.train_unbatched, cfg.data, cfg.seed, batch)
    cfg.save(os.path.join(cfg.output_dir, "config.json"), chosen_hyperparameters=chosen)
    with strategy.scope():
        backbone, feature_width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
        head = model_lib.build_head(feature_width, data.num_classes, cfg.head)
        classifier = model_lib.build_classifier(backbone, head, cfg.data.image_size)
        trained = train_lib.train(classifier, backbone, data, cfg)
    metrics = evaluate.evaluate_splits(classifier, data)
    metrics["training"] = {"phases": [vars(p) for p in trained.phases],
                           "best_validation_accuracy": trained.best_validation_accuracy}
    metrics["data"] = {"sizes": data.sizes, "skipped": data.skipped}
    _write_json(os.path.join(cfg.output_dir, "metrics.json"), metrics)
    export_dir = export.export_saved_model(classifier, data.class_names, cfg.data.image_size,
                                           backbone.module,
                                           os.path.join(cfg.output_dir, "saved_model"))
    metrics["performance"] = performance.measure(classifier, export_dir, cfg.data.image_size,
                                                 serving_batch=cfg.data.batch_size)
    _write_json(os.path.join(cfg.output_dir, "metrics.json"), metrics)
    logging.info("Test accuracy %s; performance %s",
                 metrics.get("test", {}).get("accuracy"), metrics["performance"])
    return RunOutputs(metrics, classifier, data, export_dir)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        cfg = flags_lib.config_from_flags()
        _log_to_file(cfg.output_dir)
        run(cfg)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)


def entry_point() -> None:
    app.run(main, flags_parser=flags_lib.parse_argv)


if __name__ == "__main__":
    entry_point()
