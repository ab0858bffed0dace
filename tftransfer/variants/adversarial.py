"""The adversarially fine-tuned variant: after the final training, a copy of the model is
trained for --adversarial_epochs on batches of which a share is replaced by FGSM or PGD
examples (train/adversarial.py), under `<output_dir>/adversarial/`, so the run keeps the
plain model beside the adversarially fine-tuned one.
"""
from __future__ import annotations

import dataclasses
import os

import keras
from absl import logging

from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.model import classifier as model_lib
from tftransfer.train import adversarial, training as train_lib

FOLDER = "adversarial"


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


def copy_classifier(classifier: keras.Model, cfg: RunConfig, num_classes: int,
                    name: str = "classifier"):
    """(copy, its backbone): the same architecture on a freshly loaded hub module, with the
    classifier's weights, in the classifier's strategy scope."""
    with classifier.distribute_strategy.scope():
        backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
        head = model_lib.build_head(width, num_classes, cfg.head)
        copy = model_lib.build_classifier(backbone, head, cfg.data.image_size, name=name)
        copy.set_weights(classifier.get_weights())
    return copy, backbone


@dataclasses.dataclass
class FineTuned:
    classifier: keras.Model
    backbone: object            # its HubBackbone (backbone.module is exported with it)
    training: train_lib.TrainResult
    cfg: RunConfig              # the fine-tuning run's config (output_dir included)


def fine_tune(classifier: keras.Model, data: DataBundle, cfg: RunConfig) -> FineTuned:
    """Adversarially fine-tunes a copy of the trained classifier; the original is kept."""
    tune_cfg = fine_tune_config(cfg)
    os.makedirs(tune_cfg.output_dir, exist_ok=True)
    copy, backbone = copy_classifier(classifier, cfg, data.num_classes)
    logging.info("Adversarial fine-tuning (%s, ε=%g, mix %g) for %d epoch(s) in %s",
                 cfg.adversarial.adversarial, cfg.adversarial.adversarial_epsilon,
                 cfg.adversarial.adversarial_mix, cfg.adversarial.adversarial_epochs,
                 tune_cfg.output_dir)
    training = train_lib.train(adversarial.wrap(copy, cfg.adversarial, cfg.seed), backbone, data, tune_cfg)
    return FineTuned(copy, backbone, training, tune_cfg)
