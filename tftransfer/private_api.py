"""Every use of a private Keras or KerasTuner name, in one module, each with its reason.

A private name may change in any release, so tftransfer pins the versions it was written
against (PINNED_VERSIONS) and lists each private name it overrides, calls, re-spells or
touches (PRIVATE_NAMES). tests/test_private_api.py fails when an installed version
differs from its pin, when a listed name or a parameter we rely on is gone, and when any
other module of tftransfer spells a listed name.

The mixins below turn KerasTuner's private hooks into public-named ones, which
search/tuners.py defines: `first_values()` and `write_state(path, state)`. This module
imports neither Keras nor KerasTuner, so any stage may import it cheaply.
"""
from __future__ import annotations

import dataclasses
import os

PINNED_VERSIONS = {"keras": "3.15.1", "keras_tuner": "1.4.8"}


@dataclasses.dataclass(frozen=True)
class PrivateName:
    owner: str                          # the class, by a public import path
    name: str
    use: str                            # "override", "call", "re-spell" or "set and read"
    parameters: tuple[str, ...] | None  # of a method, those we pass or take (not self)
    reason: str


PRIVATE_NAMES = (
    PrivateName("keras_tuner.Oracle", "_random_values", "override", (),
                "Where every KerasTuner oracle draws a new trial's values (random search, "
                "Bayesian initial points, a new Hyperband bracket): the space's starting "
                "point is offered there first."),
    PrivateName("keras_tuner.Oracle", "_duplicate", "call", ("values",),
                "Whether values were tried already: a resumed search does not rerun the "
                "starting point."),
    PrivateName("keras_tuner.Oracle", "_get_oracle_fname", "call", (),
                "The path of oracle.json, which we write atomically."),
    PrivateName("keras_tuner.Oracle", "_save_trial", "override", ("trial",),
                "KerasTuner writes trial.json in place; one cut short by a kill stops "
                "every resume, so we write it atomically."),
    PrivateName("keras_tuner.Oracle", "_get_trial_dir", "call", ("trial_id",),
                "The trial's folder, which holds its trial.json."),
    PrivateName("keras_tuner.engine.base_tuner.BaseTuner", "_is_worker", "call", (),
                "As BaseTuner.save does, a tuner worker leaves the oracle's save to the "
                "chief."),
    PrivateName("keras_tuner.engine.base_tuner.BaseTuner", "_get_tuner_fname", "call", (),
                "The path of the tuner's own file (tuner0.json), which we write "
                "atomically."),
    PrivateName("keras_tuner.Tuner", "_get_checkpoint_fname", "re-spell", ("trial_id",),
                "A trial's best-epoch weights, which an ensemble restores after the "
                "search, when no tuner exists: trial_checkpoint() spells the same path."),
    PrivateName("keras.Model", "_initial_epoch", "set and read", None,
                "BackupAndRestore sets it when it resumes a fit and Keras never resets "
                "it, so fit() would start the next phase there: reset before each phase, "
                "and read to tell a resumed phase from a fresh one."),
    PrivateName("keras.layers.RandAugment", "_get_seed_generator", "override", ("backend",),
                "Where RandAugment draws its seeds; it ignores a seed passed to "
                "get_random_transformation, and its own SeedGenerator is a variable whose "
                "draws a parallel tf.data map would order differently in each run."),
)


class StartingValuesFirst:
    """Oracle mixin: a new trial takes the first of `self.first_values()` not tried yet,
    else the oracle's own draw."""

    def _random_values(self):
        for values in self.first_values():
            if not self._duplicate(values):
                return values
        return super()._random_values()


class OracleStateFiles:
    """Oracle mixin: oracle.json and each trial.json go through `self.write_state`."""

    def save(self):
        self.write_state(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        self.write_state(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),
                         trial.get_state())


class TunerStateFile:
    """Tuner mixin: the tuner's own file goes through `self.write_state`."""

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        self.write_state(self._get_tuner_fname(), self.get_state())


class SeedsFromBatch:
    """Keras preprocessing-layer mixin: while `batch_seeds` is set (a SeedGenerator), the
    layer draws from it instead of its own stateful generator."""

    batch_seeds = None

    def _get_seed_generator(self, backend=None):
        if self.batch_seeds is not None:
            return self.batch_seeds
        return super()._get_seed_generator(backend)


def trial_checkpoint(project_dir: str, trial_id: str) -> str:
    """Where KerasTuner's Tuner saved the weights of a trial's best epoch."""
    return os.path.join(project_dir, f"trial_{trial_id}", "checkpoint.weights.h5")


def forget_resumed_epoch(model) -> None:
    """Clears the epoch a BackupAndRestore resumed `model`'s last fit at."""
    model._initial_epoch = None


def resumed_epoch(model) -> int | None:
    """The epoch BackupAndRestore resumed `model`'s current fit at; None if it did not."""
    return getattr(model, "_initial_epoch", None)
