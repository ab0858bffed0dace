"""The training stage: phase 1 trains the head on the frozen backbone; phase 2 unfreezes
the top `fine_tune_depth` blocks and continues at `learning_rate * fine_tune_lr_factor`.

The best weights by validation accuracy over both phases are kept (one checkpoint
callback shared by the phases, so phase 2 must beat phase 1 to replace it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
from absl import logging

from tftransfer import model as model_lib
from tftransfer.backbone import HubBackbone
from tftransfer.config import RunConfig
from tftransfer.data import DataBundle
from tftransfer.errors import TrainingDiverged


@dataclasses.dataclass
class PhaseResult:
    name: str
    epochs: int
    seconds: float
    images_per_second: float
    history: dict[str, list[float]]


@dataclasses.dataclass
class TrainResult:
    phases: list[PhaseResult]
    best_validation_accuracy: float | None


def plan_phases(cfg: RunConfig) -> list[tuple[str, int, int, float]]:
    """[(name, fine_tune_depth, epochs, peak learning rate)] in order."""
    t = cfg.train
    if cfg.backbone.fine_tune_depth == 0:
        return [("head", 0, t.epochs, t.learning_rate)]
    phases = [("head", 0, t.head_epochs, t.learning_rate),
              ("fine_tune", cfg.backbone.fine_tune_depth, t.epochs - t.head_epochs,
               t.learning_rate * t.fine_tune_lr_factor)]
    return [p for p in phases if p[2] > 0]


def _callbacks(cfg: RunConfig, has_validation: bool, best_checkpoint):
    found = [keras.callbacks.TerminateOnNaN(),
             keras.callbacks.TensorBoard(os.path.join(cfg.output_dir, "tensorboard"))]
    if has_validation:
        found.append(best_checkpoint)
        if cfg.train.early_stopping_patience:
            found.append(keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=cfg.train.early_stopping_patience))
    return found


def _raise_if_diverged(history: dict, phase: str, peak_lr: float) -> None:
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise TrainingDiverged(f"training diverged in phase '{phase}' (loss {losses[-1]}); "
                               f"lower --learning_rate (peak was {peak_lr:g}) or --l2")


def train(classifier: keras.Model, backbone: HubBackbone, data: DataBundle,
          cfg: RunConfig) -> TrainResult:
    steps_per_epoch = math.ceil(data.sizes["train"] / cfg.data.batch_size)
    warmup_steps = int(cfg.train.warmup_epochs * steps_per_epoch)
    best_path = os.path.join(cfg.output_dir, "checkpoints", "best.weights.h5")
    os.makedirs(os.path.dirname(best_path), exist_ok=True)
    best_checkpoint = keras.callbacks.ModelCheckpoint(
        best_path, monitor="val_accuracy", save_best_only=True, save_weights_only=True)
    results, first_epoch = [], 0
    for name, depth, epochs, peak_lr in plan_phases(cfg):
        backbone.set_fine_tune_depth(depth)
        model_lib.compile_for_phase(classifier, cfg.train, data.num_classes,
                                    cfg.head.label_smoothing, peak_lr,
                                    epochs * steps_per_epoch, warmup_steps)
        logging.info("Phase %s: depth %d, %d epochs, peak lr %.2g, %d trainable weights",
                     name, depth, epochs, peak_lr, len(classifier.trainable_weights))
        start = time.perf_counter()
        history = classifier.fit(
            data.train, validation_data=data.validation, initial_epoch=first_epoch,
            epochs=first_epoch + epochs, verbose=2,
            callbacks=_callbacks(cfg, data.validation is not None, best_checkpoint))
        seconds = time.perf_counter() - start
        _raise_if_diverged(history.history, name, peak_lr)
        ran = len(history.epoch)
        first_epoch += ran
        results.append(PhaseResult(name, ran, seconds,
                                   ran * data.sizes["train"] / max(seconds, 1e-9),
                                   {k: [float(v) for v in vs]
                                    for k, vs in history.history.items()}))
    best = None
    if data.validation is not None and os.path.exists(best_path):
        classifier.load_weights(best_path)
        best = float(best_checkpoint.best)
        logging.info("Restored the best weights: validation accuracy %.4f", best)
    return TrainResult(results, best)
