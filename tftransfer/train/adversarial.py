"""Adversarial fine-tuning: training batches of which a share is replaced by FGSM or PGD
examples crafted against the model being trained.

`wrap` turns a classifier into an `AdversarialClassifier`: the same layers and weights
(its checkpoints load into the plain classifier), with a `train_step` that perturbs the
batch first. Everything else (compile, fit, callbacks, `train.run_phases`) is unchanged,
and the step runs per replica under any tf.distribute strategy.

After the final training, `fine_tune` trains a copy of the model this way for
--adversarial_epochs, under `<output_dir>/adversarial/`, so the run keeps the plain model
beside the adversarially fine-tuned one.
"""
from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

from tftransfer.config.run_config import RunConfig, TrainConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.evaluate import robustness
from tftransfer.model import classifier as model_lib
from tftransfer.train import training as train_lib

FOLDER = "adversarial"


class AdversarialClassifier(keras.Model):
    """A functional classifier whose training batches are partly adversarial."""

    def __init__(self, inputs, outputs, attack: str = "fgsm", epsilon: float = 0.01,
                 mix: float = 0.5, pgd_steps: int = 5, seed: int = 0, **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        if attack not in ("fgsm", "pgd"):
            raise ValueError(f"attack must be fgsm or pgd, not {attack!r}")
        self.attack, self.epsilon, self.mix = attack, epsilon, mix
        self.pgd_steps, self.seed = pgd_steps, seed

    def _perturb(self, images, labels):
        if self.attack == "fgsm":
            return robustness.fgsm(self, images, labels, self.epsilon)
        # Stateless seed: new each step and replica, no extra state to mirror or save.
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack([tf.cast(self.seed, tf.int64) * 1000 + tf.cast(replica, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        noise = tf.random.stateless_uniform(tf.shape(images), seed, -1.0, 1.0)
        return robustness.pgd(self, images, labels, self.epsilon, self.pgd_steps, noise)

    def mixed_batch(self, images, labels):
        """The batch with its first round(mix * size) examples replaced by adversarial
        ones (batches are shuffled, so the first ones are a random share)."""
        size = tf.shape(images)[0]
        count = tf.cast(tf.round(self.mix * tf.cast(size, tf.float32)), tf.int32)
        chosen = tf.reshape(tf.range(size) < count, [-1, 1, 1, 1])
        return tf.where(chosen, self._perturb(images, labels), images)

    def train_step(self, data):
        images, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images = self.mixed_batch(images, labels)
        return super().train_step(
            keras.utils.pack_x_y_sample_weight(images, labels, sample_weight))


def wrap(classifier: keras.Model, cfg: TrainConfig, seed: int) -> AdversarialClassifier:
    """The classifier's layers in an AdversarialClassifier for cfg.adversarial, created in
    the classifier's strategy scope."""
    with classifier.distribute_strategy.scope():
        return AdversarialClassifier(
            classifier.inputs, classifier.outputs, attack=cfg.adversarial,
            epsilon=cfg.adversarial_epsilon, mix=cfg.adversarial_mix,
            pgd_steps=cfg.pgd_steps, seed=seed, name=f"{classifier.name}_adversarial")


def fine_tune_config(cfg: RunConfig) -> RunConfig:
    """The fine-tuning run: --adversarial_epochs of the last phase (the fine-tuned depth at
    the phase-2 learning rate), written under <output_dir>/adversarial."""
    t = cfg.train
    learning_rate = t.learning_rate
    if cfg.backbone.fine_tune_depth == 0:  # one phase, at the full rate: lower it as phase 2
        learning_rate *= t.fine_tune_lr_factor
    train = dataclasses.replace(t, epochs=t.adversarial_epochs, head_epochs=0,
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
                 cfg.train.adversarial, cfg.train.adversarial_epsilon,
                 cfg.train.adversarial_mix, cfg.train.adversarial_epochs, tune_cfg.output_dir)
    training = train_lib.train(wrap(copy, cfg.train, cfg.seed), backbone, data, tune_cfg)
    return FineTuned(copy, backbone, training, tune_cfg)
