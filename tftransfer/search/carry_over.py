"""Work not thrown away: the chosen trial's best epoch, which KerasTuner saved, is where
the final training starts (--warm_start), and what it keeps unless it scores higher on
the same validation split. A trial's weights are a checkpoint of the same configuration,
so they load into the final classifier: the whole model's, or the head's alone when the
trial trained on cached features."""
from __future__ import annotations

import dataclasses
import os

import h5py
from absl import logging

from tftransfer import private_api
from tftransfer.model import classifier as model_lib
from tftransfer.outputs import run_folder


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """The weights the final training starts from, and their validation score."""
    checkpoint: str
    score: float
    trial_id: str


def trial_checkpoint(output_dir: str, trial_id: str) -> str:
    """KerasTuner's checkpoint of a trial's best epoch."""
    return private_api.trial_checkpoint(os.path.join(output_dir, run_folder.SEARCH), trial_id)


def holds_backbone(checkpoint: str) -> bool:
    """False for a head trained alone on cached features."""
    with h5py.File(checkpoint, "r") as f:
        return model_lib.BACKBONE_WEIGHTS in f.get("layers", {})


def load_trial_weights(classifier, checkpoint: str) -> None:
    """Loads a trial's checkpoint into a classifier of the trial's configuration."""
    target = classifier if holds_backbone(checkpoint) else classifier.head
    target.load_weights(checkpoint)


def warm_start(cfg, trial: dict, adversarial_trials: bool) -> WarmStart | None:
    """The chosen `trial`'s best epoch, or None: --warm_start=false, no checkpoint on this
    machine (a distributed search's tuner may have written it elsewhere), or a trial that
    trained an adversarial wrapper, whose weights are laid out differently."""
    if not cfg.search.warm_start or adversarial_trials or trial.get("score") is None:
        return None
    checkpoint = trial_checkpoint(cfg.output_dir, trial["trial_id"])
    if not os.path.isfile(checkpoint):
        logging.info("Trial %s left no checkpoint here: the final training starts from the "
                     "pretrained weights", trial["trial_id"])
        return None
    return WarmStart(checkpoint, float(trial["score"]), trial["trial_id"])


def apply(classifier, start: WarmStart | None) -> float | None:
    """Loads `start` into `classifier`; returns the score the final training must beat to
    replace it (None: nothing loaded). A checkpoint that does not fit is logged and the
    training starts from the pretrained weights: the search's work is lost, not the run."""
    if start is None:
        return None
    pretrained = classifier.get_weights()
    try:
        load_trial_weights(classifier, start.checkpoint)
    except (ValueError, KeyError, OSError) as e:
        classifier.set_weights(pretrained)  # a load that failed part-way
        logging.warning("Trial %s's weights do not fit the final model (%s): it starts from "
                        "the pretrained weights", start.trial_id, str(e).splitlines()[0])
        return None
    logging.info("The final training starts from trial %s's best epoch (validation %.4f), "
                 "and keeps it unless an epoch scores higher", start.trial_id, start.score)
    return start.score
