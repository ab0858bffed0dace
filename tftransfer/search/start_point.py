"""Do no harm: a budgeted search's starting point (the flags) is kept unless its best
trial beats it by more than the noise (selection.py holds the rule); when a second seed of
the starting point could change the decision, it is trained to measure that noise."""
from __future__ import annotations

import keras_tuner as kt
from absl import logging

from tftransfer.search import selection


def start_trial(trials: list[dict], start: dict) -> dict | None:
    """The completed trial of the starting point (Hyperband's longest run of it)."""
    runs = [t for t in trials if t["status"] == kt.engine.trial.TrialStatus.COMPLETED
            and selection.is_start(t["hyperparameters"], start)]
    return max(runs, key=lambda t: t["hyperparameters"].get("tuner/epochs", 0), default=None)


def _score_again(tuner, strategy, trial: dict, objective: str) -> float:
    """The trial's configuration trained once more, with a seed no execution of it used."""
    hypermodel = tuner.hypermodel
    hp = tuner.oracle.get_space()
    hp.values = dict(trial["hyperparameters"])
    hypermodel.begin_trial()
    hypermodel.executions = hypermodel.cfg.search.executions_per_trial
    with strategy.scope():
        model = hypermodel.build(hp)
    epochs = trial["hyperparameters"].get("tuner/epochs", hypermodel.cfg.search.search_epochs)
    return hypermodel.fit(hp, model, epochs=epochs)[objective]


def decide(tuner, strategy, trials: list[dict], best: dict, validation_examples: int,
           budget, objective: str) -> selection.Decision | None:
    """`budget`: the search's SearchBudget, or None. Keeps the starting point unless the
    best trial beats it by more than the noise (selection.py); None when the starting
    point did not complete."""
    start = start_trial(trials, tuner.oracle.starting_values())
    if start is None:
        logging.warning("The starting point has no completed trial: the best trial is taken")
        return None
    scores = (start["score"],)
    # The oracle's deadline, moved earlier when trials ran slower than planned (the final
    # training will too): against the plain deadline a second seed overran the search's
    # share on the quickstart and cost the final training an epoch.
    if (selection.needs_second_seed(best["score"], start["score"], validation_examples)
            and (budget is None or tuner.oracle.second_seed_fits())):
        scores += (_score_again(tuner, strategy, start, objective),)
    decision = selection.decide(best["score"], scores, validation_examples)
    logging.info("%s", decision.describe())
    return decision
