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


_HPARAMS_CALLBACK_MODULE = "tensorboard.plugins.hparams._keras"


def _raise_if_diverged(history: dict, phase: str, peak_lr: float) -> None:
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise TrainingDiverged(f"training diverged in phase '{phase}' (loss {losses[-1]}); "
                               f"lower --learning_rate (peak was {peak_lr:g}) or --l2")


def run_phases(classifier: keras.Model, backbone: HubBackbone | None, train_data, validation_data,
               train_size: int, num_classes: int, cfg: RunConfig, callbacks: list,
               initial_epoch: int = 0) -> list[PhaseResult]:
    """Runs the planned phases from `initial_epoch` on (earlier phases are skipped, as when
    Hyperband continues a trial). `backbone` is None for a head trained on features."""
    steps_per_epoch = math.ceil(train_size / cfg.data.batch_size)
    warmup_steps = int(cfg.train.warmup_epochs * steps_per_epoch)
    results, phase_start = [], 0
    for name, depth, epochs, peak_lr in plan_phases(cfg):
        phase_end, start = phase_start + epochs, max(phase_start, initial_epoch)
        phase_start = phase_end
        if phase_end <= initial_epoch:
            continue
        if backbone is not None:
            backbone.set_fine_tune_depth(depth)
        with classifier.distribute_strategy.scope():  # optimizer slots must be mirrored too
            model_lib.compile_for_phase(classifier, cfg.train, num_classes,
                                        cfg.head.label_smoothing, peak_lr,
                                        (phase_end - start) * steps_per_epoch, warmup_steps)
        logging.info("Phase %s: depth %d, epochs %d-%d, peak lr %.2g, %d trainable weights",
                     name, depth, start + 1, phase_end, peak_lr,
                     len(classifier.trainable_weights))
        clock = time.perf_counter()
        history = classifier.fit(train_data, validation_data=validation_data,
                                 initial_epoch=start, epochs=phase_end, verbose=2,
                                 callbacks=callbacks)
        seconds = time.perf_counter() - clock
        _raise_if_diverged(history.history, name, peak_lr)
        # TensorBoard's HParams callback records one session and refuses a second fit().
        callbacks = [c for c in callbacks if type(c).__module__ != _HPARAMS_CALLBACK_MODULE]
        ran = len(history.epoch)
        results.append(PhaseResult(name, ran, seconds, ran * train_size / max(seconds, 1e-9),
                                   {k: [float(v) for v in vs]
                                    for k, vs in history.history.items()}))
    return results


def train(classifier: keras.Model, backbone: HubBackbone, data: DataBundle,
          cfg: RunConfig) -> TrainResult:
    """The final training: phases, TensorBoard, early stopping, best weights restored."""
    best_path = os.path.join(cfg.output_dir, "checkpoints", "best.weights.h5")
    os.makedirs(os.path.dirname(best_path), exist_ok=True)
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.TensorBoard(os.path.join(cfg.output_dir, "tensorboard"))]
    best_checkpoint = None
    if data.validation is not None:
        # One instance for all phases: phase 2 must beat phase 1's best to replace it.
        best_checkpoint = keras.callbacks.ModelCheckpoint(
            best_path, monitor="val_accuracy", save_best_only=True, save_weights_only=True)
        callbacks.append(best_checkpoint)
        if cfg.train.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=cfg.train.early_stopping_patience))
    phases = run_phases(classifier, backbone, data.train, data.validation, data.sizes["train"],
                        data.num_classes, cfg, callbacks)
    best = None
    if best_checkpoint is not None and os.path.exists(best_path):
        classifier.load_weights(best_path)
        best = float(best_checkpoint.best)
        logging.info("Restored the best weights: validation accuracy %.4f", best)
    return TrainResult(phases, best)
