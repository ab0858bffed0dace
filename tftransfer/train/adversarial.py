"""Adversarial fine-tuning: training batches of which a share is replaced by FGSM or PGD
examples crafted against the model being trained.

`wrap` turns a classifier into an `AdversarialClassifier`: a TransferClassifier on the same
backbone and head objects, so the same weights (its checkpoints load into the plain
classifier), with a `train_step` that perturbs the batch first. Everything else (compile,
fit, callbacks, `train.run_phases`) is unchanged, and the step runs per replica under any
tf.distribute strategy.

After the final training, variants/adversarial.py fine-tunes a copy of the model this way;
a search whose space holds `adversarial` trains its trials this way.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tftransfer.config.run_config import AdversarialConfig
from tftransfer.model import attacks
from tftransfer.model.classifier import TransferClassifier


@keras.saving.register_keras_serializable(package="tftransfer")
class AdversarialClassifier(TransferClassifier):
    """A classifier whose training batches are partly adversarial."""

    def __init__(self, backbone, head: keras.Model, image_size: int, attack: str = "fgsm",
                 epsilon: float = 0.01, mix: float = 0.5, pgd_steps: int = 5, seed: int = 0,
                 **kwargs):
        if attack not in ("fgsm", "pgd"):
            raise ValueError(f"attack must be fgsm or pgd, not {attack!r}")
        super().__init__(backbone, head, image_size, **kwargs)
        self.attack, self.epsilon, self.mix = attack, epsilon, mix
        self.pgd_steps, self.seed = pgd_steps, seed

    def get_config(self):
        return {**super().get_config(), "attack": self.attack, "epsilon": self.epsilon,
                "mix": self.mix, "pgd_steps": self.pgd_steps, "seed": self.seed}

    def _perturb(self, images, labels):
        if self.attack == "fgsm":
            return attacks.fgsm(self, images, labels, self.epsilon)
        # Stateless seed: new each step and replica, no extra state to mirror or save.
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack([tf.cast(self.seed, tf.int64) * 1000 + tf.cast(replica, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        noise = tf.random.stateless_uniform(tf.shape(images), seed, -1.0, 1.0)
        return attacks.pgd(self, images, labels, self.epsilon, self.pgd_steps, noise)

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


def wrap(classifier: TransferClassifier, cfg: AdversarialConfig,
         seed: int) -> AdversarialClassifier:
    """The classifier's backbone and head in an AdversarialClassifier for cfg.adversarial,
    created in the classifier's strategy scope."""
    with classifier.distribute_strategy.scope():
        return AdversarialClassifier(
            classifier.backbone, classifier.head, classifier.image_size, attack=cfg.adversarial,
            epsilon=cfg.adversarial_epsilon, mix=cfg.adversarial_mix,
            pgd_steps=cfg.pgd_steps, seed=seed, name=f"{classifier.name}_adversarial")
