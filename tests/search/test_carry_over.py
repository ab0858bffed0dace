import dataclasses

import numpy as np
import pytest
from conftest import mixed_search

from tftransfer.evaluate import splits as evaluate
from tftransfer.model import classifier as model_lib
from tftransfer.search import carry_over, tuning as search
from tftransfer.train import training as train_lib


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_hub_dir, color_folder):
    return mixed_search(tmp_path_factory.mktemp("carry_over"), tiny_hub_dir, color_folder,
                        search_epochs=3)


def _classifier(searched, values):
    cfg = search.apply_values(searched.cfg, values)
    with searched.strategy.scope():
        return cfg, model_lib.build_model(cfg, searched.data.num_classes)


def _validation_accuracy(classifier, data) -> float:
    labels, probabilities = evaluate.predict_split(classifier, data.validation)
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def test_the_search_hands_the_chosen_trials_best_epoch_to_the_final_training(searched):
    start = searched.found.warm_start
    chosen = next(t for t in searched.found.trials
                  if t["hyperparameters"] == searched.found.best_values)
    assert start is not None and start.trial_id == chosen["trial_id"]
    assert start.score == pytest.approx(searched.found.best_score)


def test_each_trials_weights_load_and_score_what_the_trial_scored(searched):
    kinds = set()
    for trial in searched.found.trials:
        start = carry_over.warm_start(searched.cfg, trial, adversarial_trials=False)
        kinds.add(carry_over.holds_backbone(start.checkpoint))
        _, classifier = _classifier(searched, trial["hyperparameters"])
        assert carry_over.apply(classifier, start) == pytest.approx(trial["score"])
        assert _validation_accuracy(classifier, searched.data) == pytest.approx(trial["score"])
    assert kinds == {True, False}  # frozen trials saved a head, fine-tuned ones a classifier


def test_the_final_training_keeps_the_start_unless_an_epoch_beats_it(searched):
    start = searched.found.warm_start
    for score_to_beat, kept in ((1.0, True), (0.0, False)):
        cfg, classifier = _classifier(searched, searched.found.best_values)
        cfg = dataclasses.replace(cfg, output_dir=f"{cfg.output_dir}/final_{score_to_beat}")
        carry_over.apply(classifier, start)
        before = [w.copy() for w in classifier.get_weights()]
        trained = train_lib.train(classifier, classifier.backbone, searched.data, cfg,
                                  start_score=score_to_beat)
        unchanged = all(np.array_equal(a, b)
                        for a, b in zip(before, classifier.get_weights()))
        assert unchanged == kept
        assert (trained.best_validation_accuracy == score_to_beat) == kept


def test_no_warm_start_when_turned_off_adversarial_or_without_a_checkpoint(searched, tmp_path):
    trial = searched.found.trials[0]
    off = dataclasses.replace(searched.cfg, search=dataclasses.replace(
        searched.cfg.search, warm_start=False))
    elsewhere = dataclasses.replace(searched.cfg, output_dir=str(tmp_path))
    assert carry_over.warm_start(off, trial, adversarial_trials=False) is None
    assert carry_over.warm_start(searched.cfg, trial, adversarial_trials=True) is None
    assert carry_over.warm_start(elsewhere, trial, adversarial_trials=False) is None
    assert carry_over.apply(object(), None) is None


def test_weights_that_do_not_fit_leave_the_pretrained_ones(searched):
    fine_tuned = next(t for t in searched.found.trials
                      if carry_over.holds_backbone(carry_over.trial_checkpoint(
                          searched.cfg.output_dir, t["trial_id"])))
    start = carry_over.warm_start(searched.cfg, fine_tuned, adversarial_trials=False)
    _, wider = _classifier(searched, {**fine_tuned["hyperparameters"], "head_units": "8"})
    before = [w.copy() for w in wider.get_weights()]
    assert carry_over.apply(wider, start) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, wider.get_weights()))
