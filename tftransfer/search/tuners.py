"""KerasTuner tuners for the search: the chosen algorithm, plus per-trial wall times, a
starting trial at the space's defaults, Hyperband promotions that train afresh, and state
files that survive a kill.
"""
from __future__ import annotations

import json
import os
import time

import keras_tuner as kt
import tensorflow as tf

from tftransfer.config import cluster
from tftransfer.outputs import files as atomic


class _TimedTrials:
    """Tuner mixin: records which tuner ran each trial and its wall time, beside the oracle's
    own state; one file per tuner, as the tuners of a distributed search share the folder."""

    def _seconds_path(self, tuner_id: str) -> str:
        return os.path.join(self.project_dir, f"trial_seconds.{tuner_id}.json")

    def _read_seconds(self, tuner_id: str) -> dict[str, float]:
        path = self._seconds_path(tuner_id)
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def trial_runs(self) -> dict[str, dict]:
        """{trial_id: {"tuner": tuner id, "seconds": wall time}} over every tuner."""
        runs = {}
        for name in sorted(os.listdir(self.project_dir)):
            if name.startswith("trial_seconds.") and name.endswith(".json"):
                tuner_id = name[len("trial_seconds."):-len(".json")]
                runs.update({trial_id: {"tuner": tuner_id, "seconds": seconds}
                             for trial_id, seconds in self._read_seconds(tuner_id).items()})
        return runs

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().run_trial(trial, *args, **kwargs)
        finally:
            seconds = {**self._read_seconds(self.tuner_id),
                       trial.trial_id: time.perf_counter() - start}
            # A half-written file would stop every resume.
            atomic.write_json(self._seconds_path(self.tuner_id), seconds)


class _AnnouncedTrials:
    """Tuner mixin: tells the hypermodel each trial's start, as it seeds each execution of
    a trial by its number (search.TransferHyperModel)."""

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self.hypermodel.begin_trial()


class _AtomicOracleSaves:
    """Oracle mixin: oracle.json and each trial.json are written whole or not at all.
    KerasTuner writes them in place, and a file cut short by a kill stops every resume."""

    def save(self):
        atomic.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        atomic.write_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),
                          trial.get_state())


class _AtomicTunerSave:
    """Tuner mixin: the tuner's own file (tuner0.json), written the same way."""

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        atomic.write_json(self._get_tuner_fname(), self.get_state())


class _PromotedTrialsRestart:
    """Hyperband tuner mixin: a configuration promoted to more epochs trains again from the
    pretrained weights, instead of continuing from the shorter trial's weights. Each trial's
    learning rate decays to zero by its last epoch, so a continuation would restart a
    finished schedule: in the search benchmark one configuration scored 86.6 % continued
    and 87.5 % trained straight for the same 3 epochs. A score now means what the final
    training gets from those values; it costs the shorter trial's epochs again (about
    10 % more at the default budget)."""

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        fit_kwargs["epochs"] = trial.hyperparameters.values["tuner/epochs"]
        return super(kt.Hyperband, self).run_trial(trial, *fit_args, **fit_kwargs)

    def _build_hypermodel(self, hp):
        return super(kt.Hyperband, self)._build_hypermodel(hp)  # no weights to load


class _StartsAtDefaults:
    """Oracle mixin: the first trial takes every hyperparameter's default, the space's
    starting point (search_space.py), before the oracle's own sampling. A known-good
    point first is what AutoKeras's initial hyperparameters do; random draws alone
    rarely land near the best of a space this size. A resumed search has tried it."""

    def _random_values(self):
        start = kt.HyperParameters()
        start.merge(self.hyperparameters.space)  # each active one at its default
        if not self._duplicate(start.values):
            return start.values
        return super()._random_values()


def extended_oracle_class(base: type) -> type:
    """The oracle class with the starting point and atomic saves."""
    return type(f"Extended{base.__name__}", (_StartsAtDefaults, _AtomicOracleSaves, base), {})


def _extend_oracle(tuner: kt.Tuner) -> None:
    """KerasTuner's tuners build their own oracle, so its class is extended in place; a
    tuner worker holds only a client of the chief's oracle, which samples and saves."""
    if isinstance(tuner.oracle, kt.Oracle):
        tuner.oracle.__class__ = extended_oracle_class(type(tuner.oracle))


TUNERS = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization,
          "random": kt.RandomSearch}


def make_tuner(cfg, hypermodel, strategy, objective: str) -> kt.Tuner:
    base = TUNERS[cfg.search.search]
    mixins = (_TimedTrials, _AnnouncedTrials, _AtomicTunerSave)
    if cfg.search.search == "hyperband":
        mixins += (_PromotedTrialsRestart,)
        budget = {"max_epochs": cfg.search.search_epochs, "factor": 3}
    else:
        budget = {"max_trials": cfg.search.max_trials}
    tuner_class = type(f"Transfer{base.__name__}", (*mixins, base), {})
    distributed = strategy is not tf.distribute.get_strategy()  # called outside any scope
    # Only a lone tuner or the search's chief may wipe the folder all tuners share.
    overwrite = cfg.search.overwrite and not cluster.is_tuner_worker()
    tuner = tuner_class(
        hypermodel, objective=kt.Objective(objective, "max"), directory=cfg.output_dir,
        project_name="search", overwrite=overwrite, seed=cfg.seed,
        executions_per_trial=cfg.search.executions_per_trial,
        max_consecutive_failed_trials=cfg.search.max_failed_trials,
        distribution_strategy=strategy if distributed else None, **budget)
    _extend_oracle(tuner)
    return tuner
