"""Ensembles of the search's best trials, averaged in probability space.

The ensemble's first member is the final model: the best trial's configuration, trained
by the final training. The others are the next best trials with distinct hyperparameters
(Hyperband continues one configuration in several trials), each on its own copy of the hub
module, and either restored from the trial's checkpoint (`--ensemble_members=restore`,
trained on the search's budget) or retrained like the final model (`retrain`, under
`<output_dir>/ensemble/member_<trial>/`). The ensemble is one Keras model with the
classifier's input and output, so it is evaluated and exported like a single model.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import keras
import tensorflow as tf
from absl import logging

from tftransfer.config.errors import UserError
from tftransfer.config.run_config import RunConfig
from tftransfer.data import pipeline as data_lib
from tftransfer.data.pipeline import DataBundle
from tftransfer.model import classifier as model_lib
from tftransfer.outputs import run_folder
from tftransfer.search import carry_over, tuning as search
from tftransfer.train import training as train_lib

FOLDER = run_folder.ENSEMBLE


def build_ensemble(members: Sequence[keras.Model], image_size: int) -> keras.Model:
    """images -> the members' mean probabilities (float32, whatever the dtype policy)."""
    images = model_lib.images_input(image_size)
    probabilities = keras.layers.Average(dtype="float32", name="probabilities")(
        [member(images) for member in members])
    return keras.Model(images, probabilities, name="ensemble")


def _hyperparameter_key(values: dict) -> str:
    return json.dumps({k: v for k, v in values.items() if not k.startswith("tuner/")},
                      sort_keys=True)


def runner_up_trials(search_result: search.SearchResult, count: int,
                     image_size: int | None = None) -> list[dict]:
    """Up to `count` completed trials, best first, whose hyperparameters differ from each
    other and from the best trial's, at the resolution `image_size` (members share one
    input) where a trial's searched resolution is recorded."""
    seen = {_hyperparameter_key(search_result.best_values)}
    chosen = []
    for trial in search_result.trials:  # sorted by score, best first
        key = _hyperparameter_key(trial["hyperparameters"])
        size = trial["hyperparameters"].get("image_size", image_size)
        if (trial["status"] == "COMPLETED" and key not in seen and len(chosen) < count
                and size == image_size):
            seen.add(key)
            chosen.append(trial)
    return chosen


def _member(member_cfg: RunConfig, num_classes: int,
            name: str) -> model_lib.TransferClassifier:
    """A new classifier on a freshly loaded hub module."""
    return model_lib.build_model(member_cfg, num_classes, name)


def _restored(trial: dict, member_cfg: RunConfig, num_classes: int, strategy, cfg):
    checkpoint = carry_over.trial_checkpoint(cfg.output_dir, trial["trial_id"])
    if not os.path.isfile(checkpoint):
        raise UserError(f"--ensemble_members=restore: trial {trial['trial_id']} has no "
                        f"checkpoint ({checkpoint}); use --ensemble_members=retrain")
    with strategy.scope():
        classifier = _member(member_cfg, num_classes, f"trial_{trial['trial_id']}")
        carry_over.load_trial_weights(classifier, checkpoint)
    return classifier


def _retrained(trial: dict, member_cfg: RunConfig, data: DataBundle, strategy):
    member_cfg = dataclasses.replace(member_cfg, output_dir=os.path.join(
        member_cfg.output_dir, FOLDER, f"member_{trial['trial_id']}"))
    os.makedirs(member_cfg.output_dir, exist_ok=True)
    member_data = data_lib.with_train_split(data, member_cfg.data, member_cfg.seed,
                                            strategy.num_replicas_in_sync)
    with strategy.scope():
        classifier = _member(member_cfg, data.num_classes, f"trial_{trial['trial_id']}")
    train_lib.train(classifier, classifier.backbone, member_data, member_cfg)
    return classifier


class HubModules(tf.Module):
    """The members' hub modules as one, for export.export_saved_model: exporting it exports
    each module's resources, and `variables` holds all of theirs."""

    def __init__(self, modules: Sequence):
        super().__init__(name="ensemble_hub_modules")
        self.modules = list(modules)

    @property
    def variables(self):
        return [v for module in self.modules for v in module.variables]


@dataclasses.dataclass
class Ensemble:
    model: keras.Model
    hub_modules: HubModules     # for export.export_saved_model
    trial_ids: list[str]        # of the members after the final model


def build_top_k(final: keras.Model, search_result: search.SearchResult,
                data: DataBundle, cfg: RunConfig, strategy) -> Ensemble:
    """The final model and the next --ensemble_top_k - 1 distinct trials, averaged.
    `cfg` is the run's config before the best values were applied (any trial's values are
    applied to it)."""
    wanted = cfg.ensemble.ensemble_top_k - 1
    trials = runner_up_trials(search_result, wanted, final.image_size)
    if not trials:
        raise UserError("--ensemble_top_k: the search has no completed trial besides the "
                        "best one; run more trials")
    if len(trials) < wanted:
        logging.warning("Ensemble: only %d distinct completed trial(s) besides the best",
                        len(trials))
    members, modules = [final], [final.backbone.module]
    for trial in trials:
        member_cfg = search.apply_values(cfg, trial["hyperparameters"])
        if cfg.ensemble.ensemble_members == "retrain":
            classifier = _retrained(trial, member_cfg, data, strategy)
        else:
            classifier = _restored(trial, member_cfg, data.num_classes, strategy, cfg)
        logging.info("Ensemble member %s (%s, score %.4f): %s", trial["trial_id"],
                     cfg.ensemble.ensemble_members, trial["score"], trial["hyperparameters"])
        members.append(classifier)
        modules.append(classifier.backbone.module)
    with strategy.scope():
        model = build_ensemble(members, cfg.data.image_size)
    return Ensemble(model, HubModules(modules), [t["trial_id"] for t in trials])
