"""The final training's backup under `<output_dir>/backup/`: what lets a killed run resume.

`state.json` holds the configuration the backup belongs to and the best validation score
so far; each phase has its own `keras.callbacks.BackupAndRestore` folder (its optimizer
differs) and, once finished, a `<phase>.finished.json` with its result.
"""
from __future__ import annotations

import json
import os
import shutil

import keras
from absl import logging

from tftransfer import private_api
from tftransfer.config.run_config import RunConfig
from tftransfer.outputs import files as atomic


def training_identity(cfg: RunConfig) -> dict:
    """The settings a backup depends on (JSON-normalised, so tuples compare as lists)."""
    sections = {k: v for k, v in cfg.to_dict().items()
                if k in ("seed", "data", "backbone", "head", "train")}
    return json.loads(json.dumps(sections))


def open_for(cfg: RunConfig, backup_dir: str) -> float | None:
    """Keeps a backup only if this configuration wrote it; returns its best val_accuracy."""
    state_path = os.path.join(backup_dir, "state.json")
    state = atomic.read_json(state_path)
    if os.path.isdir(backup_dir) and (state or {}).get("config") != training_identity(cfg):
        logging.warning("Discarding the training backup in %s: it does not match this "
                        "configuration", backup_dir)
        shutil.rmtree(backup_dir)
        state = None
    os.makedirs(backup_dir, exist_ok=True)
    if state is None:
        atomic.write_json(state_path, {"config": training_identity(cfg)})
        return None
    return state.get("best_val_accuracy")


def record_best(backup_dir: str, best: float) -> None:
    state_path = os.path.join(backup_dir, "state.json")
    atomic.write_json(state_path, {**atomic.read_json(state_path), "best_val_accuracy": best})


def for_phase(classifier: keras.Model, callbacks: list, backup_dir: str | None,
              phase: str) -> tuple[list, dict | None]:
    """The phase's callbacks with its BackupAndRestore, and what it recorded if it finished."""
    if backup_dir is None:
        return callbacks, None
    folder = os.path.join(backup_dir, phase)
    if os.path.isdir(folder) and atomic.read_json(
            os.path.join(folder, "training_metadata.json")) is None:
        shutil.rmtree(folder)  # killed while writing its first backup: nothing to resume
    # BackupAndRestore sets this and Keras never resets it: it would leak into the next phase.
    private_api.forget_resumed_epoch(classifier)
    # Kept after the phase (train() deletes the whole backup): the next phase starts from it.
    restore = keras.callbacks.BackupAndRestore(folder, double_checkpoint=True,
                                               delete_checkpoint=False)
    return [*callbacks, restore], atomic.read_json(
        os.path.join(backup_dir, f"{phase}.finished.json"))
