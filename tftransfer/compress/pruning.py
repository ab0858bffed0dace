"""Magnitude pruning in Keras 3 (TFMOT supports Keras 2 only), on a copy of the classifier.

A short extra fine-tune at the fine-tune learning rate raises the sparsity of the weights
being fine-tuned from 0 to the target along TFMOT's polynomial schedule (power 3). Pruned
are the kernels among the trainable weights (rank >= 2: conv and dense kernels of the
backbone's fine-tuned blocks and of the head); each kernel loses its smallest-magnitude
entries. Masks are applied after every optimizer step and at the end, so the zeros reach
the exported SavedModel, where they show as a smaller gzip, as in TFMOT's guide.
"""
from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
from absl import logging

from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle
from tftransfer.export import saved_model as export
from tftransfer.model.classifier import TransferClassifier
from tftransfer.model import tta
from tftransfer.outputs import run_folder
from tftransfer.train import training as train_lib

POWER = 3            # TFMOT's PolynomialDecay default
MASK_UPDATES = 20    # mask recomputations over the schedule (TFMOT: every 100 steps)


def polynomial_sparsity(step: int, target: float, end_step: int, begin_step: int = 0,
                        initial: float = 0.0, power: int = POWER) -> float:
    """TFMOT's PolynomialDecay: initial at begin_step, target from end_step on."""
    span = max(end_step - begin_step, 1)
    progress = min(max((step - begin_step) / span, 0.0), 1.0)
    return target + (initial - target) * (1.0 - progress) ** power


def magnitude_mask(values: np.ndarray, sparsity: float) -> np.ndarray:
    """1.0 except for the round(sparsity * size) smallest |values|, which get 0.0."""
    pruned = int(round(sparsity * values.size))
    mask = np.ones(values.size, dtype=values.dtype)
    if pruned:
        mask[np.argpartition(np.abs(values).ravel(), pruned - 1)[:pruned]] = 0.0
    return mask.reshape(values.shape)


def sparsity(arrays) -> float:
    """Fraction of exact zeros over all entries of `arrays`."""
    arrays = [np.asarray(a) for a in arrays]
    return float(sum(np.sum(a == 0) for a in arrays) / max(sum(a.size for a in arrays), 1))


class MagnitudePruning(keras.callbacks.Callback):
    """Prunes the model's trainable kernels to `target` along the polynomial schedule,
    reached at `end_step` (0-based); masks are refreshed `MASK_UPDATES` times on the way
    and applied after every batch, and the target is enforced when training ends."""

    def __init__(self, target: float, end_step: int):
        super().__init__()
        self.target, self.end_step = target, end_step
        self.frequency = max(1, end_step // MASK_UPDATES)
        self.weights, self.masks = [], []

    def on_train_begin(self, logs=None):
        self.weights = [w for w in self.model.trainable_weights if len(w.shape) >= 2]
        self.masks = [np.ones(w.shape, dtype=w.dtype) for w in self.weights]
        self._first_iteration = int(self.model.optimizer.iterations.numpy())
        self._updated_at = None
        logging.info("Pruning %d kernels (%d weights) to sparsity %.2f by step %d",
                     len(self.weights), sum(int(np.prod(w.shape)) for w in self.weights),
                     self.target, self.end_step)

    def on_train_batch_end(self, batch, logs=None):
        # The optimizer's count, not calls: Keras calls this once per steps_per_execution.
        step = int(self.model.optimizer.iterations.numpy()) - self._first_iteration - 1
        due = self._updated_at is None or step - self._updated_at >= self.frequency
        if due or step >= self.end_step:
            self._update_masks(polynomial_sparsity(step, self.target, self.end_step))
            self._updated_at = step
        self._apply_masks()

    def on_train_end(self, logs=None):
        self._update_masks(self.target)
        self._apply_masks()

    def _update_masks(self, level: float) -> None:
        self.masks = [magnitude_mask(w.numpy(), level) for w in self.weights]

    def _apply_masks(self) -> None:
        for weight, mask in zip(self.weights, self.masks):
            weight.assign(weight * mask)


@dataclasses.dataclass
class PrunedModel:
    classifier: TransferClassifier
    export_dir: str
    summary: dict     # the pruning block of compression.json


def _pruning_config(cfg: RunConfig) -> RunConfig:
    """One phase of prune_epochs at the fine-tune learning rate and the configured depth.

    BatchNorm stays in inference mode: its moving averages (momentum ~0.99) cannot follow
    weights that lose half their entries within a short fine-tune, and stale statistics
    would be served. Frozen, the statistics the weights are trained against are served."""
    t = cfg.train
    return dataclasses.replace(
        cfg, backbone=dataclasses.replace(cfg.backbone, bn_inference=True),
        train=dataclasses.replace(
            t, epochs=cfg.compress.prune_epochs, head_epochs=0, warmup_epochs=0.0,
            learning_rate=t.learning_rate * t.fine_tune_lr_factor, fine_tune_lr_factor=1.0))


def prune_and_export(classifier: TransferClassifier, data: DataBundle,
                     cfg: RunConfig) -> PrunedModel:
    """Prunes a copy of the trained classifier and exports it to
    `<output_dir>/pruned_saved_model/1/`; the classifier itself is left untouched."""
    pruning_cfg = _pruning_config(cfg)
    pruned = classifier.clone(bn_inference=pruning_cfg.backbone.bn_inference)
    steps = train_lib.steps_per_epoch(data.train, data.sizes["train"], cfg.data.batch_size,
                                      pruned.distribute_strategy.num_replicas_in_sync)
    end_step = cfg.compress.prune_epochs * steps - 1
    callback = MagnitudePruning(cfg.compress.prune_sparsity, end_step)
    phases = train_lib.run_phases(pruned, pruned.backbone, data.train, data.validation,
                                  data.sizes["train"], data.num_classes, pruning_cfg,
                                  [keras.callbacks.TerminateOnNaN(), callback],
                                  class_counts=data.class_counts["train"])
    export_dir = export.export_saved_model(
        tta.for_export(pruned, cfg.export.export_tta), data.class_names,
        cfg.data.image_size, pruned.backbone.module,
        os.path.join(cfg.output_dir, run_folder.PRUNED_SAVED_MODEL), version=1)
    summary = {
        "target_sparsity": cfg.compress.prune_sparsity,
        "sparsity": sparsity(w.numpy() for w in callback.weights),
        "pruned_kernels": [w.path for w in callback.weights],
        "pruned_weights": int(sum(np.prod(w.shape) for w in callback.weights)),
        "epochs": phases[0].epochs if phases else 0,
        "learning_rate": pruning_cfg.train.learning_rate,
        "fine_tune_depth": cfg.backbone.fine_tune_depth,
    }
    logging.info("Pruned to sparsity %.4f; exported to %s", summary["sparsity"], export_dir)
    return PrunedModel(pruned, export_dir, summary)
