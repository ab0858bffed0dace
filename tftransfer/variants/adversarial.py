"""The adversarially fine-tuned variant: after the final training, a copy of the model is
trained for --adversarial_epochs on batches of which a share is replaced by FGSM or PGD
examples (train/adversarial.py), under `<output_dir>/adversarial/`, so the run keeps the
plain model beside the adversarially fine-tuned one.
"""
from __future__ import annotations

import dataclasses
import os

from absl import logging

from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.model.classifier import TransferClassifier
from tftransfer.outputs import run_folder
from tftransfer.train import adversarial, training as train_lib

FOLDER = run_folder.ADVERSARIAL


def fine_tune_config(cfg: RunConfig) -> RunConfig:
    """The fine-tuning run: --adversarial_epochs of the last phase (the fine-tuned depth at
    the phase-2 learning rate), written under <output_dir>/adversarial."""
    t = cfg.train
    learning_rate = t.learning_rate
    if cfg.backbone.fine_tune_depth == 0:  # one phase, at the full rate: lower it as phase 2
        learning_rate *= t.fine_tune_lr_factor
    train = dataclasses.replace(t, epochs=cfg.adversarial.adversarial_epochs, head_epochs=0,
                                learning_rate=learning_rate, profile_steps=0)
    return dataclasses.replace(cfg, output_dir=os.path.join(cfg.output_dir, FOLDER),
                               train=train)


@dataclasses.dataclass
class FineTuned:
    classifier: TransferClassifier
    training: train_lib.TrainResult
    cfg: RunConfig              # the fine-tuning run's config (output_dir included)


def fine_tune(classifier: TransferClassifier, data: DataBundle,
              cfg: RunConfig) -> FineTuned:
    """Adversarially fine-tunes a copy of the trained classifier; the original is kept."""
    tune_cfg = fine_tune_config(cfg)
    os.makedirs(tune_cfg.output_dir, exist_ok=True)
    copy = classifier.clone()
    logging.info("Adversarial fine-tuning (%s, ε=%g, mix %g) for %d epoch(s) in %s",
                 cfg.adversarial.adversarial, cfg.adversarial.adversarial_epsilon,
                 cfg.adversarial.adversarial_mix, cfg.adversarial.adversarial_epochs,
                 tune_cfg.output_dir)
    training = train_lib.train(adversarial.wrap(copy, cfg.adversarial, cfg.seed),
                               copy.backbone, data, tune_cfg)
    return FineTuned(copy, training, tune_cfg)
