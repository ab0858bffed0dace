"""Checks a RunConfig before any TensorFlow work; returns it with paths normalised.
(The --search_space file is read by the search stage's own parser: cli/flags.py.)"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import tempfile

from tftransfer.config import budget as budget_lib, catalogue, cluster, multi_label_options
from tftransfer.config.run_config import (
    ADVERSARIAL_ATTACKS,
    BUDGET_SEARCH,
    FIND_LEARNING_RATE,
    AUGMENTATIONS,
    DEFAULT_BLOCK_PATTERN,
    MAX_WARMUP_REQUESTS,
    ONNX_PACKAGES,
    TFLITE_MODES,
    TTA_MODES,
    ConfigError,
    BackboneConfig,
    RunConfig,
    is_tfds_name,
)


def _require(condition: bool, flag: str, message: str) -> None:
    if not condition:
        raise ConfigError(flag, message)


def _expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path)) if path else path


def _is_keras_model(handle: str) -> bool:
    return (catalogue.keras_app(handle) is not None
            or catalogue.keras_hub_preset(handle) is not None)


def _is_local_handle(handle: str) -> bool:
    # URLs (tfhub.dev, kaggle.com, gs://) resolve at load time, Keras models in Keras.
    return "://" not in handle and not _is_keras_model(handle)


def _expand_handle(handle: str) -> str:
    preset = catalogue.keras_hub_preset(handle)
    if preset and os.path.isdir(_expand(preset)):  # a local preset folder, not a name
        return catalogue.KERAS_HUB_PREFIX + _expand(preset)
    app = catalogue.keras_app(handle)
    if app is None:
        return _expand(handle) if _is_local_handle(handle) else handle
    name, weights = app
    return f"{catalogue.KERAS_PREFIX}{name}@{_expand(weights)}" if weights else handle


def _resolve_backbone(backbone: BackboneConfig) -> BackboneConfig:
    """--backbone=NAME: its handle (unless --hub_handle names one: a local copy, say) and
    its block pattern (unless --block_pattern was changed). Its native size is read where
    --image_size=0 is resolved (run_config.native_image_size)."""
    name = backbone.backbone
    if not name and _is_keras_model(backbone.hub_handle):
        name = backbone.hub_handle  # --hub_handle=keras:NAME: the same defaults
    if not name:
        return backbone
    try:
        handle = backbone.hub_handle or catalogue.handle(name)
        entry = catalogue.lookup(name)
    except ValueError as e:
        raise ConfigError("backbone", str(e)) from None
    pattern = backbone.block_pattern
    if pattern == DEFAULT_BLOCK_PATTERN:
        pattern = entry.block_pattern
    return dataclasses.replace(backbone, hub_handle=handle, block_pattern=pattern)


def _check_output_dir(path: str) -> None:
    _require(bool(path), "output_dir", "is required")
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as e:
        raise ConfigError("output_dir", f"cannot write to {path}: {e.strerror}") from None


def _check_data(cfg: RunConfig) -> None:
    d = cfg.data
    _require(bool(d.dataset), "dataset", "is required (a TFDS name or a folder)")
    if not is_tfds_name(d.dataset):
        _require(os.path.isdir(d.dataset), "dataset", f"folder not found: {d.dataset}")
    _require(d.image_size == 0 or 8 <= d.image_size <= 4096, "image_size",
             "must be 0 (auto) or between 8 and 4096")
    _require(d.batch_size >= 1, "batch_size", "must be >= 1")
    _require(0 <= d.validation_fraction < 1, "validation_fraction", "must be in [0, 1)")
    _require(0 <= d.test_fraction < 1, "test_fraction", "must be in [0, 1)")
    _require(d.validation_fraction + d.test_fraction < 1, "test_fraction",
             "validation_fraction + test_fraction must be < 1")
    unknown = sorted(set(d.augmentations) - set(AUGMENTATIONS))
    _require(not unknown, "augmentations",
             f"unknown {unknown}; choose from {', '.join(AUGMENTATIONS)}")
    _require(d.cache_limit_mb >= 0, "cache_limit_mb", "must be >= 0")
    _require(d.shuffle_buffer >= 1, "shuffle_buffer", "must be >= 1")


def _check_backbone(cfg: RunConfig) -> None:
    b = cfg.backbone
    _require(bool(b.hub_handle), "hub_handle", "is required (or --backbone=NAME)")
    if _is_local_handle(b.hub_handle):
        _require(os.path.isfile(os.path.join(b.hub_handle, "saved_model.pb")), "hub_handle",
                 f"no SavedModel (saved_model.pb) in {b.hub_handle}")
    app = catalogue.keras_app(b.hub_handle)
    if app is not None:
        _require(app[0].isidentifier(), "hub_handle", f"'{b.hub_handle}': expected "
                 "keras:NAME or keras:NAME@WEIGHTS_FILE, NAME from keras.applications")
        _require(not app[1] or os.path.isfile(app[1]), "hub_handle",
                 f"no weights file {app[1]}")
    preset = catalogue.keras_hub_preset(b.hub_handle)
    _require(preset != "", "hub_handle", "keras_hub: needs a preset name or folder")
    if preset and os.sep in preset:
        _require(os.path.isfile(os.path.join(preset, "config.json")), "hub_handle",
                 f"no KerasHub preset (config.json) in {preset}")
    _require(b.fine_tune_depth >= -1, "fine_tune_depth", "must be -1 (all), 0 or a block count")
    _check_unfreeze_schedule(cfg)
    try:
        pattern = re.compile(b.block_pattern)
    except re.error as e:
        raise ConfigError("block_pattern", f"invalid regex: {e}") from None
    _require(pattern.groups >= 1, "block_pattern", "needs a capture group naming the block")


def _check_unfreeze_schedule(cfg: RunConfig) -> None:
    stages = cfg.backbone.unfreeze_schedule
    if not stages:
        return
    _require(all(s >= 1 or s == -1 for s in stages), "unfreeze_schedule",
             "depths must be block counts >= 1 or -1 (all)")
    deepening = [math.inf if s == -1 else s for s in stages]
    _require(all(a < b for a, b in zip(deepening, deepening[1:])), "unfreeze_schedule",
             f"depths must grow stage by stage (-1 last), got {','.join(map(str, stages))}")
    _require(cfg.backbone.fine_tune_depth != 0 or cfg.search.search != "none",
             "unfreeze_schedule", "a frozen backbone (--fine_tune_depth=0) has no stages; "
                                  "set --fine_tune_depth to the last stage's depth")


def _check_head(cfg: RunConfig) -> None:
    h = cfg.head
    _require(all(u >= 1 for u in h.head_units), "head_units", "widths must be >= 1")
    _require(0 <= h.dropout < 1, "dropout", "must be in [0, 1)")
    _require(h.l2 >= 0, "l2", "must be >= 0")
    _require(0 <= h.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")


def _check_train(cfg: RunConfig) -> None:
    t = cfg.train
    _require(t.epochs >= 1, "epochs", "must be >= 1")
    _require(0 <= t.head_epochs <= t.epochs, "head_epochs", "must be in [0, --epochs]")
    _require(t.learning_rate == FIND_LEARNING_RATE or t.learning_rate > 0, "learning_rate",
             f"must be > 0, or {FIND_LEARNING_RATE}")
    _require(t.fine_tune_lr_factor > 0, "fine_tune_lr_factor", "must be > 0")
    _require(0 < t.layer_lr_decay <= 1, "layer_lr_decay", "must be in (0, 1] (1: off)")
    _require(0 <= t.momentum < 1, "momentum", "must be in [0, 1)")
    _require(t.weight_decay >= 0, "weight_decay", "must be >= 0")
    _require(t.warmup_epochs >= 0, "warmup_epochs", "must be >= 0")
    _require(0 <= t.ema_momentum < 1, "ema_momentum", "must be in [0, 1) (0: automatic)")
    _require(t.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")
    _require(t.profile_steps >= 0, "profile_steps", "must be >= 0")
    _require(t.tta in TTA_MODES, "tta", f"choose from {', '.join(TTA_MODES)}")
    # A folder may bring its own validation/ sub-folder: the data stage checks those.
    _require(not (t.calibrate and is_tfds_name(cfg.data.dataset)
                  and not cfg.data.validation_split and cfg.data.validation_fraction == 0),
             "calibrate", "needs a validation split: set --validation_split or "
                          "--validation_fraction > 0")


def _check_search(cfg: RunConfig) -> None:
    s = cfg.search
    _require(s.max_trials >= 1, "max_trials", "must be >= 1")
    _require(s.search_epochs >= 1, "search_epochs", "must be >= 1")
    _require(0 < s.search_fraction <= 1, "search_fraction", "must be in (0, 1]")
    _require(s.executions_per_trial >= 1, "executions_per_trial", "must be >= 1")
    _require(s.max_failed_trials >= 1, "max_failed_trials", "must be >= 1")
    if s.time_budget:
        try:
            budget_lib.parse_duration(s.time_budget)
        except ValueError as e:
            raise ConfigError("time_budget", str(e)) from None


def _resolve_search(search):
    """--search=auto: the budget's search with a --time_budget, else none."""
    if search.search != "auto":
        return search
    return dataclasses.replace(search, search=BUDGET_SEARCH if search.time_budget else "none")


def _check_cluster(cfg: RunConfig) -> None:
    """TF_CONFIG for multi_worker; a whole tuner id + oracle address for distributed search,
    from the flags or KerasTuner's environment."""
    if cfg.strategy == "multi_worker":
        cluster.check_multi_worker()
        # Each worker would measure and plan its own epochs, and the workers must agree.
        _require(not cfg.search.time_budget, "time_budget",
                 "is not supported with --strategy=multi_worker; set --epochs instead")
    s, env = cfg.search, os.environ
    if s.oracle_address:
        cluster.parse_address(s.oracle_address)
    if not (s.tuner_id or s.oracle_address or cluster.ORACLE_IP in env):
        return
    _require(bool(s.tuner_id or env.get(cluster.TUNER_ID)), "tuner_id",
             "distributed search needs this process's id: chief, tuner0, tuner1...")
    _require(bool(s.oracle_address or env.get(cluster.ORACLE_PORT)), "oracle_address",
             "distributed search needs the chief's host:port")
    _require(s.search != "none", "search", "a distributed search (--tuner_id, "
                                           "KERASTUNER_*) needs --search")
    _require(cfg.strategy != "multi_worker", "strategy",
             "tuner processes train their trials on local devices; use auto or mirrored")


def _check_export(cfg: RunConfig) -> None:
    e = cfg.export
    _require(e.export_version >= 0, "export_version", "must be >= 0 (0: next free version)")
    _require(0 <= e.warmup_requests <= MAX_WARMUP_REQUESTS, "warmup_requests",
             f"must be in [0, {MAX_WARMUP_REQUESTS}] (TF Serving's limit)")


def _check_compress(cfg: RunConfig) -> None:
    e = cfg.compress
    unknown = sorted(set(e.export_tflite) - set(TFLITE_MODES))
    _require(not unknown, "export_tflite",
             f"unknown {unknown}; choose from {', '.join(TFLITE_MODES)}")
    _require(0 <= e.prune_sparsity < 1, "prune_sparsity", "must be in [0, 1)")
    _require(e.prune_epochs >= 1, "prune_epochs", "must be >= 1")
    _require(e.representative_examples >= 1, "representative_examples", "must be >= 1")
    _require(0 <= e.compression_tolerance <= 1, "compression_tolerance", "must be in [0, 1]")
    if e.export_onnx:
        # find_spec locates a package without importing it (tf2onnx imports TensorFlow).
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        _require(not missing, "export_onnx",
                 f"needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}"
                 f" (pip install {' '.join(missing)})")


def _check_robustness(cfg: RunConfig) -> None:
    t, r, ensemble = cfg.adversarial, cfg.robustness, cfg.ensemble
    _require(t.adversarial in ADVERSARIAL_ATTACKS, "adversarial",
             f"choose from {', '.join(ADVERSARIAL_ATTACKS)}")
    _require(0 <= t.adversarial_epsilon <= 1, "adversarial_epsilon", "must be in [0, 1]")
    _require(0 < t.adversarial_mix <= 1, "adversarial_mix", "must be in (0, 1]")
    _require(t.adversarial_epochs >= 1, "adversarial_epochs", "must be >= 1")
    _require(t.pgd_steps >= 1, "pgd_steps", "must be >= 1")
    _require(all(0 <= e <= 1 for e in r.robustness_epsilons), "robustness_epsilons",
             "each must be in [0, 1] (pixel units)")
    _require(r.robustness_examples >= 0, "robustness_examples", "must be >= 0 (0: all)")
    _require(r.robustness_pgd_steps >= 1, "robustness_pgd_steps", "must be >= 1")
    _require(ensemble.ensemble_top_k == 0 or ensemble.ensemble_top_k >= 2, "ensemble_top_k",
             "must be >= 2, or 0 for no ensemble")
    if ensemble.ensemble_top_k:
        _require(cfg.search.search != "none", "ensemble_top_k",
                 "an ensemble of the best trials needs --search")
        _require(cfg.search.search == "hyperband"
                 or ensemble.ensemble_top_k <= cfg.search.max_trials,
                 "ensemble_top_k", f"must be <= --max_trials ({cfg.search.max_trials})")


def validate(cfg: RunConfig) -> RunConfig:
    """Raises ConfigError for the first bad value; returns the config with paths expanded."""
    data = cfg.data
    if not is_tfds_name(data.dataset):
        data = dataclasses.replace(data, dataset=_expand(data.dataset))
    data = dataclasses.replace(data, data_dir=_expand(data.data_dir),
                               labels_csv=_expand(data.labels_csv))
    backbone = _resolve_backbone(cfg.backbone)
    backbone = dataclasses.replace(backbone, hub_handle=_expand_handle(backbone.hub_handle))
    search = _resolve_search(dataclasses.replace(
        cfg.search, search_space=_expand(cfg.search.search_space)))
    cfg = dataclasses.replace(cfg, output_dir=_expand(cfg.output_dir), data=data,
                              backbone=backbone, search=search)
    _check_data(cfg)
    _check_backbone(cfg)
    _check_head(cfg)
    _check_train(cfg)
    _check_search(cfg)
    _check_export(cfg)
    _check_compress(cfg)
    _check_robustness(cfg)
    _check_cluster(cfg)
    multi_label_options.check(cfg)
    _check_output_dir(cfg.output_dir)
    return cfg
