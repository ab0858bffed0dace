"""The final training's own Keras callbacks: early stopping that survives a resume, and
the time budget's stop before an epoch that would overrun it."""
from __future__ import annotations

import dataclasses
import time

import keras
from absl import logging

from tftransfer import private_api
from tftransfer.outputs import files as atomic


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping whose count of epochs without improvement survives a resume: it is
    saved with the backup after every epoch and restored when BackupAndRestore resumes
    the phase right after the saved epoch. Each phase (each fit) still starts afresh."""

    def __init__(self, state_path: str, **kwargs):
        super().__init__(**kwargs)
        self.state_path = state_path
        self._first_epoch_of_fit = True

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first_epoch_of_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch_of_fit:
            self._first_epoch_of_fit = False
            saved = atomic.read_json(self.state_path)
            # Set by BackupAndRestore when it resumes this phase from its backup.
            resumed = bool(private_api.resumed_epoch(self.model))
            if resumed and saved and saved["epoch"] == epoch - 1:
                self.wait, self.best = saved["wait"], saved["best"]
                logging.info("Early stopping resumed: %d epoch(s) without improvement",
                             self.wait)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        best = None if self.best is None else float(self.best)
        atomic.write_json(self.state_path, {"epoch": epoch, "wait": self.wait, "best": best})


@dataclasses.dataclass(frozen=True)
class Deadline:
    at: float                    # time.time() by which the final training must end
    trace_seconds: float = 0.0   # what a fit's first epoch spends building and tracing


class StopAtDeadline(keras.callbacks.Callback):
    """Ends a fit when its next epoch, as long as its slowest so far, would end after the
    deadline: a budgeted run's guard for when its estimates were short. A fit's first
    epoch counts without its tracing (at least a quarter of it counts): taken whole, a
    slow first epoch once ended a final training after 1 of 8 epochs."""

    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline, self.slowest, self.epoch_start = deadline, 0.0, 0.0
        self.first_of_fit = True

    def on_train_begin(self, logs=None):
        self.first_of_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        took = now - self.epoch_start
        if self.first_of_fit:
            took = max(took - self.deadline.trace_seconds, took / 4)
            self.first_of_fit = False
        self.slowest = max(self.slowest, took)
        last = epoch + 1 >= self.params.get("epochs", 0)
        if not last and now + self.slowest > self.deadline.at:
            logging.warning("Stopping after epoch %d: another would overrun the time budget",
                            epoch + 1)
            self.model.stop_training = True
