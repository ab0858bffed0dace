"""The from-scratch variant (--compare_scratch): the run's architecture, backbone and head,
trained from random initialisation under `<output_dir>/scratch/`, so the comparison shows
what the pretrained weights are worth in accuracy and in time.

It trains every block with BatchNorm adapting, in one phase at the head's learning rate (a
random backbone has nothing to protect), with the run's data, augmentation and epochs. When
the run had a --time_budget, it gets the final training's wall time instead: up to three
times the epochs, stopped when its time is up.
"""
from __future__ import annotations

import dataclasses
import os
import time

from absl import logging

from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.model import classifier as model_lib
from tftransfer.outputs import run_folder
from tftransfer.train import training as train_lib
from tftransfer.train.callbacks import Deadline

FOLDER = run_folder.SCRATCH
BUDGETED_EPOCHS_FACTOR = 3  # under a budget the clock, not the epochs, ends the training


def scratch_config(cfg: RunConfig) -> RunConfig:
    """The from-scratch run's config, written under <output_dir>/scratch."""
    budgeted = bool(cfg.search.time_budget)
    train = dataclasses.replace(
        cfg.train, head_epochs=0, fine_tune_lr_factor=1.0, layer_lr_decay=1.0,
        epochs=cfg.train.epochs * (BUDGETED_EPOCHS_FACTOR if budgeted else 1),
        profile_steps=0, compare_scratch=False)
    backbone = dataclasses.replace(cfg.backbone, fine_tune_depth=-1, bn_inference=False,
                                   unfreeze_schedule=())
    return dataclasses.replace(cfg, output_dir=os.path.join(cfg.output_dir, FOLDER),
                               train=train, backbone=backbone)


def training_seconds(phases: list[dict]) -> float:
    """The final training's wall time, from metrics.json's training phases."""
    return sum(phase["seconds"] for phase in phases)


@dataclasses.dataclass
class FromScratch:
    classifier: model_lib.TransferClassifier
    training: train_lib.TrainResult
    cfg: RunConfig              # the from-scratch run's config (output_dir included)


def train_from_scratch(data: DataBundle, cfg: RunConfig, strategy,
                       final_training_seconds: float) -> FromScratch:
    """Builds the run's model, replaces the backbone's weights by random ones and trains it;
    under a budget, for the final training's `final_training_seconds`."""
    scratch_cfg = scratch_config(cfg)
    os.makedirs(scratch_cfg.output_dir, exist_ok=True)
    deadline = None
    if cfg.search.time_budget:
        deadline = Deadline(time.time() + final_training_seconds)
    logging.info("Training the same model from random weights for %d epoch(s)%s in %s",
                 scratch_cfg.train.epochs,
                 f", at most {final_training_seconds:.0f} s" if deadline else "",
                 scratch_cfg.output_dir)
    with strategy.scope():
        classifier = model_lib.build_model(scratch_cfg, data.num_classes, name="scratch")
        classifier.backbone.reinitialize(cfg.seed)
        trained = train_lib.train(classifier, classifier.backbone, data, scratch_cfg, deadline)
    return FromScratch(classifier, trained, scratch_cfg)
