"""The run's model variants (the top-K ensemble, the adversarially fine-tuned copy, the
same model trained from scratch),
evaluated and exported like the main model.

Each variant's metrics.json block holds what the main model's top level holds (validation
and test metrics, `robustness` when --robustness_eval, `performance`), plus how it was made.
Its SavedModel has the same signatures, under `<output_dir>/<variant>/saved_model/`.
comparison.py puts the models side by side.
"""
from __future__ import annotations

import os

import keras

from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.evaluate import robustness, splits as evaluate
from tftransfer.export import measure, saved_model as export
from tftransfer.model import tta
from tftransfer.outputs import run_folder
from tftransfer.variants import adversarial, ensemble, scratch


def evaluate_variant(model: keras.Model, data: DataBundle, cfg: RunConfig, base_dir: str,
                     hub_modules) -> dict:
    """Validation/test metrics (with --tta, its), robustness (if enabled), the export
    (with --export_tta, its) and its performance."""
    metrics, _ = evaluate.evaluate_splits(model, data, cfg.train.tta)
    if cfg.robustness.robustness_eval:
        metrics["robustness"] = robustness.evaluate_robustness(model, data, cfg)
    exported = tta.for_export(model, cfg.export.export_tta)
    export_dir = export.export_saved_model(exported, data.class_names, cfg.data.image_size,
                                           hub_modules, base_dir, cfg.export.export_version)
    metrics["performance"] = measure.performance_block(exported, export_dir,
                                                       cfg.data.image_size,
                                                       serving_batch=cfg.data.batch_size)
    metrics["export_dir"] = export_dir
    return metrics


def adversarial_variant(classifier: keras.Model, data: DataBundle, cfg: RunConfig) -> dict:
    """The `adversarial` block: fine-tunes a copy of the trained classifier (--adversarial)
    and evaluates it."""
    tuned = adversarial.fine_tune(classifier, data, cfg)
    t = cfg.adversarial
    block = {"attack": t.adversarial, "epsilon": t.adversarial_epsilon,
             "mix": t.adversarial_mix, "epochs": t.adversarial_epochs,
             "training": {"phases": [vars(p) for p in tuned.training.phases],
                          "best_validation_accuracy": tuned.training.best_validation_accuracy}}
    return {**block, **evaluate_variant(
        tuned.classifier, data, cfg, os.path.join(tuned.cfg.output_dir, run_folder.SAVED_MODEL),
        tuned.classifier.backbone.module)}


def ensemble_variant(classifier: keras.Model, search_result, data: DataBundle,
                     cfg: RunConfig, strategy) -> dict:
    """The `ensemble` block: the final classifier and the next best trials, averaged."""
    built = ensemble.build_top_k(classifier, search_result, data, cfg, strategy)
    block = {"members": 1 + len(built.trial_ids), "trial_ids": built.trial_ids,
             "member_source": cfg.ensemble.ensemble_members}
    export_base = os.path.join(cfg.output_dir, ensemble.FOLDER, run_folder.SAVED_MODEL)
    return {**block, **evaluate_variant(built.model, data, cfg, export_base, built.hub_modules)}


def scratch_variant(data: DataBundle, cfg: RunConfig, strategy, training: dict) -> dict:
    """The `scratch` block: the run's model trained from random weights (--compare_scratch)
    for the final `training`'s epochs, or its wall time under a budget, and evaluated."""
    made = scratch.train_from_scratch(data, cfg, strategy,
                                      scratch.training_seconds(training["phases"]))
    block = {"epochs_allowed": made.cfg.train.epochs,
             "seconds_allowed": (scratch.training_seconds(training["phases"])
                                 if cfg.search.time_budget else None),
             "training": {"phases": [vars(p) for p in made.training.phases],
                          "best_validation_accuracy": made.training.best_validation_accuracy}}
    return {**block, **evaluate_variant(
        made.classifier, data, cfg, os.path.join(made.cfg.output_dir, run_folder.SAVED_MODEL),
        made.classifier.backbone.module)}
