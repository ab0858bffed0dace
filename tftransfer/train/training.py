"""The training stage: phase 1 trains the head on the frozen backbone; phase 2 unfreezes
the top `fine_tune_depth` blocks and continues at `learning_rate * fine_tune_lr_factor`.

The best weights by validation accuracy over both phases are kept (one checkpoint
callback shared by the phases, so phase 2 must beat phase 1 to replace it).

A killed final training resumes when the same command runs again: each phase has its own
`keras.callbacks.BackupAndRestore` folder under `<output_dir>/backup/` (its optimizer
differs), finished phases are restored rather than rerun, and the folder is deleted once
every phase has finished.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
import warnings

import keras
from absl import logging

from tftransfer.config.errors import TrainingDiverged
from tftransfer.config.run_config import RunConfig
from tftransfer.data.pipeline import DataBundle, replica_safe_batch_size
from tftransfer.model import compile as compile_lib
from tftransfer.model.backbone import HubBackbone
from tftransfer.outputs import console, files as atomic, run_folder
from tftransfer.train import backup, callbacks as train_callbacks, class_weights


@dataclasses.dataclass
class PhaseResult:
    name: str
    epochs: int
    seconds: float
    images_per_second: float
    history: dict[str, list[float]]
    ema_momentum: float | None = None   # the weights' average's, with --ema
    fine_tune_depth: int = 0            # the backbone's top blocks this phase trained
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)  # at each end


@dataclasses.dataclass
class TrainResult:
    phases: list[PhaseResult]
    best_validation_accuracy: float | None
    start_score: float | None = None    # the warm start's validation score, if one


def unfreeze_stages(depth: int, schedule: tuple[int, ...], epochs: int) -> list[tuple[int, int]]:
    """[(depth, epochs)] of the fine-tune stages: the `schedule`'s depths shallower than
    `depth`, then `depth`; `epochs` split evenly, the remainder to the deepest stages. With
    fewer epochs than stages, the shallowest stages are left out."""
    def blocks(d):
        return math.inf if d == -1 else d
    shallower = [d for d in schedule if blocks(d) < blocks(depth)]
    depths = [*shallower[max(0, len(shallower) - (epochs - 1)):], depth]
    share, extra = divmod(epochs, len(depths))
    return [(d, share + (i >= len(depths) - extra)) for i, d in enumerate(depths)]


def plan_phases(cfg: RunConfig) -> list[tuple[str, int, int, float]]:
    """[(name, fine_tune_depth, epochs, peak learning rate)] in order: the head alone, then
    one fine-tune phase per stage of --unfreeze_schedule (one without it)."""
    t = cfg.train
    if cfg.backbone.fine_tune_depth == 0:
        return [("head", 0, t.epochs, t.learning_rate)]
    stages = unfreeze_stages(cfg.backbone.fine_tune_depth, cfg.backbone.unfreeze_schedule,
                             t.epochs - t.head_epochs)
    names = (["fine_tune"] if len(stages) == 1
             else [f"fine_tune_{n}" for n in range(1, len(stages) + 1)])
    phases = [("head", 0, t.head_epochs, t.learning_rate),
              *((name, depth, epochs, t.learning_rate * t.fine_tune_lr_factor)
                for name, (depth, epochs) in zip(names, stages))]
    return [p for p in phases if p[2] > 0]


_HPARAMS_CALLBACK_MODULE = "tensorboard.plugins.hparams._keras"


def _raise_if_diverged(history: dict, phase: str, peak_lr: float) -> None:
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise TrainingDiverged(f"training diverged in phase '{phase}' (loss {losses[-1]}); "
                               f"lower --learning_rate (peak was {peak_lr:g}) or --l2")


def _ema_callbacks(cfg: RunConfig) -> list:
    """With --ema, validation and every later callback of an epoch (the best checkpoint
    among them) see the averaged weights; training steps go on from the raw ones."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.train.ema else []


def steps_per_epoch(train_data, train_size: int, batch_size: int, replicas: int = 1) -> int:
    """Batches in one epoch of `train_data`: the dataset's own count when tf.data knows it,
    else counted with the batch the pipeline used, which replica_safe_batch_size may have
    made smaller than `batch_size`."""
    known = int(train_data.cardinality())
    if known > 0:
        return known
    return math.ceil(train_size / replica_safe_batch_size(batch_size, train_size, replicas))


def _rate_factors(backbone: HubBackbone | None, depth: int,
                  cfg: RunConfig) -> dict[int, float] | None:
    """--layer_lr_decay's factors for a phase that fine-tunes the backbone."""
    if backbone is None or depth == 0 or cfg.train.layer_lr_decay == 1.0:
        return None
    return backbone.rate_factors(cfg.train.layer_lr_decay)


def run_phases(classifier: keras.Model, backbone: HubBackbone | None, train_data, validation_data,
               train_size: int, num_classes: int, cfg: RunConfig, callbacks: list,
               backup_dir: str | None = None,
               class_counts: list[int] | None = None,
               multi_label: bool = False) -> list[PhaseResult]:
    """Runs the planned phases. `backbone` is None for a head trained on features.
    With `backup_dir`, each phase backs up every epoch and resumes from its backup.
    `class_counts`: the training split's, which --class_weight weighs the loss by.
    `multi_label`: the labels are multi-hot (DataBundle.multi_label)."""
    steps = steps_per_epoch(train_data, train_size, cfg.data.batch_size,
                            classifier.distribute_strategy.num_replicas_in_sync)
    warmup_steps = int(cfg.train.warmup_epochs * steps)
    class_weight = class_weights.of(cfg.train.class_weight, class_counts or [])
    results, phase_end = [], 0
    for name, depth, epochs, peak_lr in plan_phases(cfg):
        start, phase_end = phase_end, phase_end + epochs
        if backbone is not None:
            backbone.set_fine_tune_depth(depth)
        with classifier.distribute_strategy.scope():  # optimizer slots must be mirrored too
            compile_lib.compile_for_phase(classifier, cfg.train, num_classes,
                                          cfg.head.label_smoothing, peak_lr,
                                          epochs * steps, warmup_steps,
                                          compile_lib.HEAD_STEPS_PER_EXECUTION
                                          if backbone is None else 1,
                                          _rate_factors(backbone, depth, cfg),
                                          multi_label=multi_label)
        logging.info("Phase %s: depth %d, epochs %d-%d, peak lr %.2g, %d trainable weights%s",
                     name, depth, start + 1, phase_end, peak_lr,
                     len(classifier.trainable_weights),
                     f", weights averaged (momentum {classifier.optimizer.ema_momentum:.4f})"
                     if cfg.train.ema else "")
        phase_callbacks, finished = backup.for_phase(
            classifier, [*_ema_callbacks(cfg), *callbacks], backup_dir, name)
        clock = time.perf_counter()
        epoch_ends = []

        def epoch_ended(*_):
            # Rounded down: to the nearest, the last epoch's end could read later than the
            # phase's own end, taken just after it.
            epoch_ends.append(math.floor((time.perf_counter() - clock) * 100) / 100)
        phase_callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=epoch_ended))
        # A finished phase (perhaps stopped early) only restores its final state: 0 epochs.
        # The pipelines shuffle themselves; Keras warns about its default shuffle=True.
        history = classifier.fit(train_data, validation_data=validation_data,
                                 initial_epoch=start, epochs=start if finished else phase_end,
                                 shuffle=False, verbose=console.fit_verbose(),
                                 callbacks=phase_callbacks,
                                 class_weight=class_weight)
        seconds = time.perf_counter() - clock
        _raise_if_diverged(history.history, name, peak_lr)
        # TensorBoard's HParams callback records one session and refuses a second fit().
        callbacks = [c for c in callbacks if type(c).__module__ != _HPARAMS_CALLBACK_MODULE]
        if finished:
            logging.info("Phase %s had finished before; restored it from its backup", name)
            results.append(PhaseResult(**finished["result"]))
            continue
        ran = len(history.epoch)
        if ran and history.epoch[0] > start:
            logging.info("Phase %s resumed from its backup at epoch %d", name,
                         history.epoch[0] + 1)
        result = PhaseResult(name, ran, seconds, ran * train_size / max(seconds, 1e-9),
                             {k: [float(v) for v in vs] for k, vs in history.history.items()},
                             classifier.optimizer.ema_momentum if cfg.train.ema else None,
                             depth, epoch_ends)
        results.append(result)
        if backup_dir is not None:
            atomic.write_json(os.path.join(backup_dir, f"{name}.finished.json"),
                                   {"result": vars(result)})
    return results


def _profiled_steps(cfg: RunConfig) -> tuple[int, int] | int:
    """Keras's profile_batch range: steps 2..1+N, skipping the tracing of the first."""
    steps = cfg.train.profile_steps
    return (2, 1 + steps) if steps else 0


def train(classifier: keras.Model, backbone: HubBackbone, data: DataBundle,
          cfg: RunConfig, deadline: train_callbacks.Deadline | None = None,
          start_score: float | None = None) -> TrainResult:
    """The final training: phases, TensorBoard, early stopping, best weights restored;
    with a `deadline`, no epoch starts that would end after it. `start_score`: the
    validation score of the weights `classifier` starts with (a search trial's), kept as
    the best unless an epoch beats it."""
    best_path = os.path.join(cfg.output_dir, run_folder.BEST_WEIGHTS)
    os.makedirs(os.path.dirname(best_path), exist_ok=True)
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.TensorBoard(os.path.join(cfg.output_dir, run_folder.TENSORBOARD),
                                             profile_batch=_profiled_steps(cfg))]
    if deadline is not None:
        callbacks.append(train_callbacks.StopAtDeadline(deadline))
    backup_dir = os.path.join(cfg.output_dir, run_folder.BACKUP)
    resumed_best = backup.open_for(cfg, backup_dir)
    if resumed_best is None and start_score is not None and data.validation is not None:
        classifier.save_weights(best_path)
        resumed_best = start_score
        backup.record_best(backup_dir, start_score)
    best_checkpoint, monitor = None, compile_lib.monitored(data.multi_label)
    if data.validation is not None:
        # One instance for all phases: phase 2 must beat phase 1's best to replace it.
        # A resumed run must beat the best from before the interruption.
        best_checkpoint = keras.callbacks.ModelCheckpoint(
            best_path, monitor=monitor, mode="max", save_best_only=True, save_weights_only=True,
            initial_value_threshold=resumed_best)
        callbacks.append(best_checkpoint)
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: backup.record_best(
            backup_dir, best_checkpoint.best)))
        if cfg.train.early_stopping_patience:
            callbacks.append(train_callbacks.ResumableEarlyStopping(
                os.path.join(backup_dir, "early_stopping.json"), monitor=monitor, mode="max",
                patience=cfg.train.early_stopping_patience))
    try:
        phases = run_phases(classifier, backbone, data.train, data.validation,
                            data.sizes["train"], data.num_classes, cfg, callbacks,
                            backup_dir=backup_dir, class_counts=data.class_counts["train"],
                            multi_label=data.multi_label)
    except TrainingDiverged:
        shutil.rmtree(backup_dir, ignore_errors=True)  # diverged weights must not be resumed
        raise
    shutil.rmtree(backup_dir)
    best = None
    if best_checkpoint is not None and os.path.exists(best_path):
        with warnings.catch_warnings():
            # Weights saved before the first compile (a warm start's) hold no optimizer
            # state, which is not needed after training.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            classifier.load_weights(best_path)
        best = float(best_checkpoint.best)
        logging.info("Restored the best weights: %s %.4f", monitor, best)
    return TrainResult(phases, best, start_score)
