"""The search stage: KerasTuner over the head, the optimizer and the fine-tune depth.

`TransferHyperModel.build(hp)` declares the space (search_space.py) and builds a trial's
model; `fit(hp, ...)` trains it with the phases of train.py on inputs.py's subsets (the
head alone on cached features when the backbone is frozen and nothing augments); tuners.py
makes the KerasTuner tuner; start_point.py keeps the flags unless a trial beats them.
"""
from __future__ import annotations

import dataclasses
import os

import keras
import keras_tuner as kt
from absl import logging

from tftransfer.config import budget as budget_lib, cluster, run_config as config_lib
from tftransfer.config.errors import TrainingDiverged, UserError
from tftransfer.data import pipeline as data_lib
from tftransfer.model import (
    backbone as backbone_lib,
    classifier as model_lib,
    compile as compile_lib,
)
from tftransfer.outputs import console, files as atomic, run_folder
from tftransfer.search import (
    carry_over,
    feature_cache as features_lib,
    hyperrule,
    inputs as inputs_lib,
    selection,
    space as search_space,
    start_point,
    tuners,
)
from tftransfer.train import (
    adversarial as adversarial_lib,
    class_weights,
    training as train_lib,
)

OBJECTIVE = "val_accuracy"


def apply_values(cfg: config_lib.RunConfig, values: dict) -> config_lib.RunConfig:
    """The config with the trial's (or the best) hyperparameter values."""
    flat = config_lib.to_flat(cfg)
    chosen = {name: value for name, value in search_space.to_flag_values(values).items()
              if name in flat}  # not "tuner/*"
    for name, value in chosen.items():
        if isinstance(flat[name], (bool, int, float)):  # KerasTuner stores bools as 0/1
            chosen[name] = type(flat[name])(value)
    return config_lib.from_flat({**flat, **chosen})


def _best_of(history: dict[str, list[float]]) -> dict[str, float]:
    return {name: (max if "accuracy" in name else min)(values)
            for name, values in history.items() if values}


class TransferHyperModel(kt.HyperModel):
    def __init__(self, cfg, space: dict, inputs: inputs_lib.SearchInputs, feature_width: int,
                 module):
        """`module`: the hub module, loaded once (in the strategy's scope) for all trials."""
        super().__init__(name="tftransfer")
        self.cfg, self.space, self.inputs, self.feature_width = cfg, space, inputs, feature_width
        self.module = module
        self.pretrained = [v.numpy() for v in module.variables]
        self.executions = 0  # of the current trial, built so far

    def trial_config(self, hp, epochs: int | None = None) -> config_lib.RunConfig:
        cfg = apply_values(self.cfg, search_space.declare_all(hp, self.space))
        if epochs is not None:
            head_epochs = 0 if cfg.backbone.fine_tune_depth == 0 else min(1, epochs - 1)
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(
                cfg.train, epochs=epochs, head_epochs=head_epochs))
        return cfg

    def _adversarial(self, cfg) -> bool:
        """Trials train on adversarial batches only where the space holds `adversarial`."""
        return "adversarial" in self.space and cfg.adversarial.adversarial != "none"

    def _inputs(self, cfg) -> inputs_lib.SearchData:
        return self.inputs.at(cfg.data.image_size)

    def _uses_cache(self, cfg) -> bool:
        return (cfg.backbone.fine_tune_depth == 0 and not cfg.data.augment
                and not self._adversarial(cfg) and self._inputs(cfg).cacheable)

    def begin_trial(self) -> None:
        """Called by the tuner (tuners.py) before each trial's first build."""
        self.executions = 0

    def _seed(self) -> None:
        """Seeds each execution of a trial by its number alone, so a trial's result depends
        only on its values: not on how many trials ran before it (a resumed search runs
        fewer), nor on whether Hyperband promoted it."""
        keras.utils.set_random_seed(self.cfg.seed + self.executions)
        self.executions += 1

    def build(self, hp):
        cfg = self.trial_config(hp)
        self._seed()
        num_classes = self.inputs.data.num_classes
        head = model_lib.build_head(self.feature_width, num_classes, cfg.head)
        if self._uses_cache(cfg):
            model = head
        else:
            # Every trial starts from the pretrained weights (reloading would leak memory).
            for variable, value in zip(self.module.variables, self.pretrained):
                variable.assign(value)
            backbone, _ = model_lib.build_backbone(cfg.backbone, cfg.data.image_size,
                                                   self.module)
            model = model_lib.TransferClassifier(backbone, head, cfg.data.image_size)
            if self._adversarial(cfg):
                model = adversarial_lib.wrap(model, cfg.adversarial, self.cfg.seed)
        # Compiled here so KerasTuner accepts it; each phase in fit() recompiles.
        compile_lib.compile_for_phase(model, cfg.train, num_classes, cfg.head.label_smoothing,
                                      cfg.train.learning_rate, 1, 0)
        return model

    def _datasets(self, cfg, cached: bool, replicas: int):
        inputs = self._inputs(cfg)
        if not cached:
            train = data_lib.training_batches(inputs.train, inputs.train_size, cfg.data,
                                              self.cfg.seed, replicas,
                                              inputs.data.num_classes)
            return train, inputs.data.validation

        def safe_batch(size: int) -> int:
            return data_lib.replica_safe_batch_size(cfg.data.batch_size, size, replicas)

        train = features_lib.feature_dataset(*inputs.cached["train"],
                                             safe_batch(inputs.train_size), self.cfg.seed)
        features, labels = inputs.cached["validation"]
        return train, features_lib.feature_dataset(features, labels, safe_batch(len(labels)))

    def fit(self, hp, model, *args, epochs=None, callbacks=(), **kwargs):
        cfg = self.trial_config(hp, epochs or self.cfg.search.search_epochs)
        cached = self._uses_cache(cfg)
        train, validation = self._datasets(cfg, cached,
                                           model.distribute_strategy.num_replicas_in_sync)
        backbone = None if cached else model.backbone
        try:
            phases = train_lib.run_phases(
                model, backbone, train, validation, self._inputs(cfg).train_size,
                self.inputs.data.num_classes, cfg,
                [keras.callbacks.TerminateOnNaN(), *callbacks],
                class_counts=self.inputs.data.class_counts["train"])
        except TrainingDiverged as e:
            raise kt.errors.FailedTrialError(str(e)) from None
        merged: dict[str, list[float]] = {}
        for phase in phases:
            for name, values in phase.history.items():
                merged.setdefault(name, []).extend(values)
        return _best_of(merged)


@dataclasses.dataclass
class SearchResult:
    best_values: dict       # what the final training follows: the best trial's or the start's
    best_score: float
    trials: list[dict]
    decision: selection.Decision | None = None
    warm_start: carry_over.WarmStart | None = None   # the chosen trial's best epoch


@dataclasses.dataclass(frozen=True)
class SearchBudget:
    """A budgeted search's limits, from the run's plan (config/budget.py)."""
    deadline: float         # time.time() by which the search, second seed included, ends
    trial_seconds: float    # the plan's estimate of one trial
    depths: tuple[int, ...] | None = None   # the fine-tune depths it affords; None: all
    secured_seconds: float = 0.0            # the final training's share after it
    start_trial_seconds: float = 0.0        # the plan's estimate of the start's trial
    seed_trial_seconds: tuple[float, ...] = ()   # ...and of the seed points' trials


def _check_depths(space: dict, num_blocks: int) -> None:
    depths = search_space.values_of(space["fine_tune_depth"])
    bad = [d for d in depths if not isinstance(d, int) or d < -1 or d > num_blocks]
    if bad:
        raise UserError(f"--search_space: fine_tune_depth {bad} outside -1..{num_blocks} "
                        f"(the backbone has {num_blocks} blocks)")


def _trial_records(tuner) -> list[dict]:
    """search.json's trials; `seed`: a seed point's (it trains longer)."""
    runs = tuner.trial_runs()
    records = [{"trial_id": t.trial_id, "status": t.status, "score": t.score,
                "hyperparameters": t.hyperparameters.values,
                "seed": tuner.oracle.is_seed(t.hyperparameters.values),
                "tuner": runs.get(t.trial_id, {}).get("tuner"),
                "seconds": round(runs.get(t.trial_id, {}).get("seconds", 0.0), 2),
                "message": (t.message or "").strip().splitlines()[-1:] or None}
               for t in tuner.oracle.trials.values()]
    # Ties go to the earlier trial: KerasTuner's own ranking follows the order it reloaded
    # the trial files in, which differs between an uninterrupted and a resumed search.
    return sorted(records, key=lambda r: (-(r["score"] if r["score"] is not None else -1),
                                          r["trial_id"]))


def make_space(cfg, train_examples: int, num_blocks: int, sizes: tuple[int, ...] = (),
               class_counts=()) -> tuple[hyperrule.Prior, dict]:
    """The prior for this data size and backbone, and the space: the default one (searching
    the resolutions `sizes`, and class weights when the training split's `class_counts`
    are imbalanced) with the --search_space overrides; a budgeted run starts it at its own
    flags."""
    prior = hyperrule.prior(train_examples, num_blocks)
    overrides = (search_space.load_overrides(cfg.search.search_space)
                 if cfg.search.search_space else {})
    imbalanced = class_weights.imbalance(class_counts) >= class_weights.IMBALANCED
    space = search_space.build_space(prior, cfg.data.augment, cfg.data.batch_size, overrides,
                                     sizes, imbalanced)
    _check_depths(space, num_blocks)
    if cfg.search.time_budget:
        space = search_space.start_at_flags(space, config_lib.to_flat(cfg))
    return prior, space


def seed_points(space: dict, own_size: int | None) -> tuple[dict, ...]:
    """The informed points the search tries right after its start (hyperrule.py), those
    the space holds; `own_size`: the data's image size when --image_size left it open."""
    sizes = space.get("image_size")
    point = hyperrule.small_image_point(
        own_size, tuple(sizes.values) if isinstance(sizes, search_space.Choice) else ())
    if point is None:
        return ()
    if not search_space.holds(space, point):
        logging.info("The search space leaves out the small-image point %s", point)
        return ()
    return (point,)


def _seed_epochs(cfg, data: data_lib.DataBundle) -> int:
    """A seed point's trial epochs: the plan's (budget.trial_epochs), at least the
    search's own."""
    work = budget_lib.Workload(data.sizes["train"], 0, 0, cfg.data.batch_size)
    return max(cfg.search.search_epochs,
               budget_lib.trial_epochs(work, cfg.search.search_fraction, seed=True))


def _within_depths(space: dict, depths: tuple[int, ...]) -> dict:
    spec = space["fine_tune_depth"]
    if not isinstance(spec, search_space.Choice):
        return space
    kept = tuple(d for d in spec.values if d in depths)
    return {**space, "fine_tune_depth": search_space.Choice(kept or spec.values[:1])}


def prior_examples(cfg, data: data_lib.DataBundle) -> int:
    """The data size the prior reads: a budgeted run's subset is a trial's fidelity, not
    the dataset's size, so it reads the whole training split."""
    if cfg.search.time_budget:
        return data.sizes["train"]
    return int(data.sizes["train"] * cfg.search.search_fraction)


def run_search(cfg, data: data_lib.DataBundle, strategy,
               budget: SearchBudget | None = None) -> SearchResult | None:
    """Searches, writes <output_dir>/search.json, and returns the values to train.

    In a distributed search (cluster.py) the chief serves the oracle until every tuner
    worker is done, then reports; a tuner worker runs trials and returns None."""
    backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
    prior, space = make_space(cfg, prior_examples(cfg, data), backbone.num_blocks,
                              inputs_lib.image_sizes(data), data.class_counts["train"])
    if budget is not None and budget.depths is not None:
        space = _within_depths(space, budget.depths)
    logging.info("Search (%s, %s prior): %s", cfg.search.search, prior.regime,
                 search_space.describe(space))
    seeds = seed_points(space, data.own_size)
    if seeds and budget is not None and not budget.seed_trial_seconds:
        logging.info("The budget's plan holds no seed point's trial: the search tries none")
        seeds = ()
    inputs = inputs_lib.SearchInputs(cfg, data, space, strategy.num_replicas_in_sync, backbone)
    del backbone
    with strategy.scope():
        module = backbone_lib.load_module(cfg.backbone.hub_handle)
    hypermodel = TransferHyperModel(cfg, space, inputs, width, module)
    deadline = None if budget is None else budget.deadline
    tuner = tuners.make_tuner(cfg, hypermodel, strategy, OBJECTIVE, deadline,
                              0.0 if budget is None else budget.trial_seconds,
                              0.0 if budget is None else budget.secured_seconds,
                              0.0 if budget is None else budget.start_trial_seconds,
                              seed_points=seeds,
                              seed_trial_seconds=() if budget is None
                              else budget.seed_trial_seconds,
                              validation_examples=data.sizes.get("validation", 0),
                              seed_epochs=_seed_epochs(cfg, data))
    fit_kwargs = {} if cfg.search.search == "hyperband" else {"epochs": cfg.search.search_epochs}
    try:
        tuner.search(callbacks=[keras.callbacks.TensorBoard(
            os.path.join(cfg.output_dir, run_folder.SEARCH_TENSORBOARD))],
            # KerasTuner's trial tables on a terminal; a log gets trial_line()s.
            verbose=console.progress_verbose(), **fit_kwargs)
    except RuntimeError as e:
        lines = str(e).strip().splitlines() or ["?"]
        raise UserError(f"search stopped: {lines[0]} Last failure: {lines[-1]}") from None
    if cluster.is_tuner_worker():
        logging.info("Tuner %s: no trials left; the chief reports the search", tuner.tuner_id)
        return None
    trials = _trial_records(tuner)
    best = next((t for t in trials if t["status"] == kt.engine.trial.TrialStatus.COMPLETED),
                None)
    record = {"objective": OBJECTIVE, "tuner": cfg.search.search, "prior": prior.regime,
              "space": search_space.describe(space), "seed_points": list(seeds),
              "trials": trials}
    search_json = os.path.join(cfg.output_dir, run_folder.SEARCH_JSON)
    if best is None:
        atomic.write_json(search_json, record, indent=2)
        raise UserError("search finished without a completed trial; see search.json")
    decision = start_point.decide(tuner, strategy, trials, best,
                                  data.sizes.get("validation", 0), budget, OBJECTIVE)
    chosen = best
    if decision is not None and decision.keep_start:
        chosen = start_point.start_trial(trials, tuner.oracle.starting_values())
    atomic.write_json(search_json, {
        **record, "chosen_trial": chosen["trial_id"],
        "do_no_harm": None if decision is None else decision.to_dict()}, indent=2)
    logging.info("Best trial %s: %s = %.4f, %s; training trial %s's values",
                 best["trial_id"], OBJECTIVE, best["score"], best["hyperparameters"],
                 chosen["trial_id"])
    return SearchResult(dict(chosen["hyperparameters"]), chosen["score"], trials, decision,
                        carry_over.warm_start(cfg, chosen, "adversarial" in space))
