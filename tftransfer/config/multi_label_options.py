"""Multi-label runs (--labels_csv, or a TFDS sequence label): the options they cannot go
with. No TensorFlow.

A multi-label run has a sigmoid head and per-label thresholds; the stages below assume one
softmax label per image, so each is refused with one line rather than failing deep inside.
"""
from __future__ import annotations

import os

from tftransfer.config.run_config import FIND_LEARNING_RATE, ConfigError, RunConfig, is_tfds_name

# (flag, is it set in cfg, why it cannot be used); all are single-label stages.
_SINGLE_LABEL_ONLY = (
    ("time_budget", lambda c: bool(c.search.time_budget), "a budget plans a search"),
    ("search", lambda c: c.search.search != "none", "the search's objective is val_accuracy"),
    ("learning_rate", lambda c: c.train.learning_rate == FIND_LEARNING_RATE,
     "the range test uses the softmax loss"),
    ("class_weight", lambda c: c.train.class_weight != "none", "weights are per class"),
    ("calibrate", lambda c: c.train.calibrate, "temperature scaling fits one softmax"),
    ("robustness_eval", lambda c: c.robustness.robustness_eval, "it measures accuracy"),
    ("adversarial", lambda c: c.adversarial.adversarial != "none", "it attacks a softmax"),
    ("export_tflite", lambda c: bool(c.compress.export_tflite), "rows compare accuracy"),
    ("keras_int8", lambda c: c.compress.keras_int8, "rows compare accuracy"),
    ("export_onnx", lambda c: c.compress.export_onnx, "rows compare accuracy"),
    ("prune_sparsity", lambda c: bool(c.compress.prune_sparsity), "rows compare accuracy"),
    ("compare_scratch", lambda c: c.train.compare_scratch, "its row compares accuracy"),
    ("tta", lambda c: c.train.tta != "none", "the thresholds are chosen without it"),
    ("export_tta", lambda c: c.export.export_tta, "the thresholds are chosen without it"),
    ("augmentations", lambda c: c.data.augment and bool({"mixup", "cutmix"} & set(
        c.data.augmentations)), "mixup and cutmix mix one label per image"),
)


def refuse_single_label_options(cfg: RunConfig) -> None:
    """Raises ConfigError for the first option a multi-label run cannot use. Validation
    calls it for --labels_csv; the run, once it has found a TFDS sequence label."""
    for flag, is_set, why in _SINGLE_LABEL_ONLY:
        if is_set(cfg):
            raise ConfigError(flag, f"is not supported with multi-label data: {why}")


def check(cfg: RunConfig) -> None:
    """Raises ConfigError when --labels_csv is unusable or meets a single-label option."""
    path = cfg.data.labels_csv
    if not path:
        return
    if is_tfds_name(cfg.data.dataset):
        raise ConfigError("labels_csv", "needs --dataset to be the folder its paths are "
                                        "relative to, not a TFDS name")
    if not os.path.isfile(path):
        raise ConfigError("labels_csv", f"no such file: {path}")
    refuse_single_label_options(cfg)
