"""KerasTuner's oracle and tuner for the search, built the way KerasTuner builds its own
tuners: make_tuner constructs the chosen algorithm's oracle and passes it with `oracle=`
to a subclass of kt.Tuner.

Our oracles start at the space's defaults and write state files that survive a kill; our
tuner records per-trial wall times, announces each trial to the hypermodel, and trains a
Hyperband promotion afresh. What overrides KerasTuner's private methods is in
private_api.py; the classes here compose it.
"""
from __future__ import annotations

import os
import time

import keras_tuner as kt
import tensorflow as tf
from absl import logging

from tftransfer import private_api
from tftransfer.config import cluster
from tftransfer.config.budget_plan import MAX_SLOWDOWN, MIN_SLOWDOWN
from tftransfer.outputs import files as atomic, run_folder
from tftransfer.search import selection


class _StartsAtDefaults(private_api.StartingValuesFirst):
    """Oracle mixin: the first trial takes every hyperparameter's default, the space's
    starting point (search_space.py), and the next ones the `seed_points` (each the start
    with some values changed: hyperrule.py's informed guesses), before the oracle's own
    sampling. Known-good points first is what AutoKeras's initial hyperparameters do;
    random draws alone rarely land near the best of a space this size. A resumed search
    has tried them."""

    seed_points: tuple[dict, ...] = ()

    def starting_values(self) -> dict:
        start = kt.HyperParameters()
        start.merge(self.hyperparameters.space)  # each active one at its default
        return start.values

    def first_values(self) -> list[dict]:
        start = self.starting_values()
        return [start, *({**start, **point} for point in self.seed_points)]

    def is_seed(self, values: dict) -> bool:
        """Whether a trial's `values` are a seed point's."""
        return any(selection.is_start(values, seed) for seed in self.first_values()[1:])


class _AtomicStateFiles:
    """Oracle and tuner mixin: oracle.json, each trial.json and the tuner's own file
    (tuner0.json) are written whole or not at all. KerasTuner writes them in place, and a
    file cut short by a kill stops every resume."""

    def write_state(self, path: str, state: dict) -> None:
        atomic.write_json(path, state)


class _Deadline:
    """Oracle mixin: with a `deadline` (time.time()), no trial starts that would end after
    it. A trial is expected to last the mean time between the trials handed out so far
    (trials cost more than their measured steps: checkpoints, summaries, a trace per phase;
    or less), else the plan's estimate. `holdback_trials` trials' time is kept back (for a
    second seed of the starting point) once a trial beats the start, and trials s× slower
    than planned move the end earlier by (s - 1)× the final training's secured seconds, as
    that training will be slower by as much (later, when they are faster); not for the
    plan's own first trials. On a distributed search the chief's oracle decides, and each
    tuner worker stops when it is refused a trial."""

    deadline: float | None = None
    trial_seconds: float = 0.0
    start_trial_seconds: float = 0.0    # the first trial's (the start's) own; 0: the mean's
    seed_trial_seconds: tuple[float, ...] = ()   # the seed points' trials', next
    secured_seconds: float = 0.0
    holdback_trials: int = 0
    validation_examples: int = 0        # what the trials score on (selection.py's noise)
    _handed_out: list | None = None

    def _planned(self, index: int) -> float:
        """The plan's seconds for trial number `index` (0: the start's, then the seed
        points', then the mean's)."""
        firsts = (self.start_trial_seconds, *self.seed_trial_seconds)
        return (firsts[index] if index < len(firsts) else 0.0) or self.trial_seconds

    def _planned_seconds(self, trials: int) -> float:
        """The plan's seconds for the first `trials` trials."""
        return sum(self._planned(i) for i in range(trials))

    def _ratio(self) -> float:
        """The trials handed out so far: their time between starts over the plan's."""
        starts = self._handed_out or []
        if len(starts) < 2:
            return 1.0
        return (starts[-1] - starts[0]) / max(self._planned_seconds(len(starts) - 1), 1e-9)

    def expected_trial_seconds(self, index: int | None = None) -> float:
        """A trial's expected seconds: trial number `index`'s, else an average one's."""
        planned = self.trial_seconds if index is None else self._planned(index)
        return max(self._ratio(), MIN_SLOWDOWN) * planned

    def slowdown(self) -> float:
        return min(max(self._ratio(), MIN_SLOWDOWN), MAX_SLOWDOWN)

    def start_beaten(self) -> bool:
        """Whether a completed trial beats the starting point's completed one by enough
        that a second seed of the start could change the decision: only then is one asked
        for, so only then is its time kept back (kept back from the first trial, it left a
        3-minute budget one trial)."""
        start = self.starting_values()
        scores = [(t.score, selection.is_start(t.hyperparameters.values, start))
                  for t in self.trials.values()
                  if t.status == kt.engine.trial.TrialStatus.COMPLETED and t.score is not None]
        starts = [score for score, is_start in scores if is_start]
        return bool(starts) and selection.needs_second_seed(
            max(s for s, _ in scores), max(starts), self.validation_examples)

    def effective_deadline(self, holdback: bool = True, shifted: bool = True) -> float:
        """When the last trial must end; `holdback`: with the second seed's time kept back
        (not when asking whether that seed itself fits); `shifted`: moved by the slowdown."""
        kept_back = self.holdback_trials if holdback and self.start_beaten() else 0
        shift = self.secured_seconds * (self.slowdown() - 1) if shifted else 0.0
        return self.deadline - kept_back * self.expected_trial_seconds(0) - shift

    def second_seed_fits(self) -> bool:
        """Whether a second run of the start's trial ends before the effective deadline."""
        return (self.deadline is None or time.time() + self.expected_trial_seconds(0)
                <= self.effective_deadline(holdback=False))

    def populate_space(self, trial_id):
        if self.deadline is not None:
            now = time.time()
            self._handed_out = [*(self._handed_out or []), now]
            index = len(self.trials)
            expected = self.expected_trial_seconds(index)
            # The plan's own points (the start, then the seed points) are not given up
            # for a slowdown: the final training, sized to the time left, gives up epochs
            # instead. A 5-minute run on 8-px digits whose start ran 1.4x its estimate
            # refused its seed so and kept a frozen start: 85 % test, against 99 %.
            planned = index <= len(self.seed_trial_seconds)
            if now + expected > self.effective_deadline(shifted=not planned):
                logging.info("The search's share of the time budget is spent: no trial %s",
                             trial_id)
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)


class _TransferOracle(_Deadline, _StartsAtDefaults, _AtomicStateFiles,
                      private_api.OracleStateFiles):
    """What each of our oracles adds to KerasTuner's."""


class TransferRandomSearchOracle(_TransferOracle, kt.oracles.RandomSearchOracle):
    """KerasTuner's random search, from the space's starting point."""


class TransferBayesianOracle(_TransferOracle, kt.oracles.BayesianOptimizationOracle):
    """KerasTuner's Bayesian optimization, from the space's starting point."""


class TransferHyperbandOracle(_TransferOracle, kt.oracles.HyperbandOracle):
    """KerasTuner's Hyperband, from the space's starting point."""


ORACLES = {"hyperband": TransferHyperbandOracle, "bayesian": TransferBayesianOracle,
           "random": TransferRandomSearchOracle}


class _TimedTrials:
    """Tuner mixin: records which tuner ran each trial and its wall time, beside the oracle's
    own state; one file per tuner, as the tuners of a distributed search share the folder."""

    def _seconds_path(self, tuner_id: str) -> str:
        return os.path.join(self.project_dir, f"trial_seconds.{tuner_id}.json")

    def _read_seconds(self, tuner_id: str) -> dict[str, float]:
        return atomic.read_json(self._seconds_path(tuner_id)) or {}

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


class _LongerSeedTrials:
    """Tuner mixin: a seed point's trial trains for `seed_epochs` (0: as any other), as
    its learning curve crosses the start's late (config/budget.py, SEED_TRIAL_STEPS)."""

    seed_epochs: int = 0

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        # A distributed search's tuner workers hold a client of the chief's oracle, which
        # does not say which points are seeds: their seed trials train as any other.
        is_seed = getattr(self.oracle, "is_seed", lambda values: False)
        if self.seed_epochs and is_seed(trial.hyperparameters.values):
            fit_kwargs["epochs"] = max(self.seed_epochs, fit_kwargs.get("epochs", 0))
        return super().run_trial(trial, *fit_args, **fit_kwargs)


class _AnnouncedTrials:
    """Tuner mixin: tells the hypermodel each trial's start, as it seeds each execution of
    a trial by its number (search.TransferHyperModel)."""

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self.hypermodel.begin_trial()


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trial_line(number: str, total: int | None, values: dict, status: str,
               score: float | None, seconds: float, budget_left: float | None,
               objective: str) -> str:
    """One line on a finished trial: which of how many, its result, its time, the search
    budget left, and its values (KerasTuner's own tables show only on a terminal)."""
    of = f" of {total}" if total else ""
    result = f"{objective} {score:.4f}" if score is not None else status.lower()
    left = "" if budget_left is None else f", {max(budget_left, 0) / 60:.1f} min of the " \
                                          "search budget left"
    shown = ", ".join(f"{name}={_short(v)}" for name, v in values.items()
                      if not name.startswith("tuner/"))
    return f"Trial {number}{of}: {result} in {seconds:.0f} s{left}; {shown or 'defaults'}"


class _SummarisedTrials:
    """Tuner mixin: logs trial_line() as each trial ends. `total_trials` (None: Hyperband's
    count is open) and `deadline` (time.time(), or None) come from make_tuner."""

    total_trials: int | None = None
    deadline: float | None = None
    _trial_clock: float = 0.0

    def on_trial_begin(self, trial):
        self._trial_clock = time.perf_counter()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        ended = self.oracle.get_trial(trial.trial_id)  # a distributed search's chief's copy
        number = str(int(trial.trial_id) + 1) if trial.trial_id.isdigit() else trial.trial_id
        logging.info("%s", trial_line(
            number, self.total_trials, ended.hyperparameters.values, str(ended.status),
            ended.score, time.perf_counter() - self._trial_clock,
            None if self.deadline is None else self.deadline - time.time(),
            self.oracle.objective.name))


class TransferTuner(_SummarisedTrials, _TimedTrials, _LongerSeedTrials, _AnnouncedTrials,
                    _AtomicStateFiles, private_api.TunerStateFile, kt.Tuner):
    """The search's tuner: KerasTuner's Tuner over the oracle it is given."""


class TransferHyperbandTuner(TransferTuner):
    """The tuner of a Hyperband search: a configuration promoted to more epochs trains again
    from the pretrained weights, for its `tuner/epochs`, instead of continuing from the
    shorter trial's weights as kt.Hyperband does. Each trial's learning rate decays to
    zero by its last epoch, so a continuation would restart a finished schedule: in the
    search benchmark one configuration scored 86.6 % continued and 87.5 % trained straight
    for the same 3 epochs. A score now means what the final training gets from those
    values; it costs the shorter trial's epochs again (about 10 % more at the default
    budget). kt.Tuner loads no weights, so only the epochs need setting."""

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        fit_kwargs["epochs"] = trial.hyperparameters.values["tuner/epochs"]
        return super().run_trial(trial, *fit_args, **fit_kwargs)


def make_oracle(cfg, objective: str, deadline: float | None = None,
                trial_seconds: float = 0.0, secured_seconds: float = 0.0,
                start_trial_seconds: float = 0.0, seed_points: tuple[dict, ...] = (),
                seed_trial_seconds: tuple[float, ...] = (),
                validation_examples: int = 0) -> kt.Oracle:
    """The oracle of `cfg.search.search`, maximizing `objective`, trying the start and
    then the `seed_points` first; with a `deadline`, it hands out no trial expected to end
    after it (see _Deadline)."""
    if cfg.search.search == "hyperband":
        budget = {"max_epochs": cfg.search.search_epochs, "factor": 3}
    else:
        budget = {"max_trials": cfg.search.max_trials}
    oracle = ORACLES[cfg.search.search](
        objective=kt.Objective(objective, "max"), seed=cfg.seed,
        max_consecutive_failed_trials=cfg.search.max_failed_trials, **budget)
    oracle.deadline, oracle.trial_seconds = deadline, trial_seconds
    oracle.secured_seconds, oracle.start_trial_seconds = secured_seconds, start_trial_seconds
    oracle.holdback_trials = 0 if deadline is None else 1  # a second seed of the start
    oracle.seed_points, oracle.seed_trial_seconds = tuple(seed_points), seed_trial_seconds
    oracle.validation_examples = validation_examples
    return oracle


def make_tuner(cfg, hypermodel, strategy, objective: str, deadline: float | None = None,
               trial_seconds: float = 0.0, secured_seconds: float = 0.0,
               start_trial_seconds: float = 0.0,
               seed_points: tuple[dict, ...] = (),
               seed_trial_seconds: tuple[float, ...] = (),
               validation_examples: int = 0, seed_epochs: int = 0) -> TransferTuner:
    """The search's tuner, over a new oracle. On a tuner worker of a distributed search,
    KerasTuner's BaseTuner swaps that oracle for a client of the chief's, which serves
    the same oracle class."""
    tuner_class = TransferHyperbandTuner if cfg.search.search == "hyperband" else TransferTuner
    distributed = strategy is not tf.distribute.get_strategy()  # called outside any scope
    # Only a lone tuner or the search's chief may wipe the folder all tuners share.
    overwrite = cfg.search.overwrite and not cluster.is_tuner_worker()
    tuner = tuner_class(
        make_oracle(cfg, objective, deadline, trial_seconds, secured_seconds,
                    start_trial_seconds, seed_points, seed_trial_seconds,
                    validation_examples), hypermodel,
        directory=cfg.output_dir,
        project_name=run_folder.SEARCH, overwrite=overwrite,
        executions_per_trial=cfg.search.executions_per_trial,
        distribution_strategy=strategy if distributed else None)
    tuner.total_trials = None if cfg.search.search == "hyperband" else cfg.search.max_trials
    tuner.deadline = deadline
    tuner.seed_epochs = 0 if cfg.search.search == "hyperband" else seed_epochs
    return tuner
