import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import TESTS, mixed_search

from tftransfer.data import preprocess
from tftransfer.evaluate import splits as evaluate
from tftransfer.export import layout as export_layout
from tftransfer.model import classifier as model_lib
from tftransfer.report import comparison
from tftransfer.search import carry_over, tuning as search
from tftransfer.train import training as train_lib
from tftransfer.variants import ensemble, evaluation as variants


def _trained_classifier(cfg, data, strategy, name="classifier"):
    with strategy.scope():
        backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
        head = model_lib.build_head(width, data.num_classes, cfg.head)
        classifier = model_lib.TransferClassifier(backbone, head, cfg.data.image_size, name)
    train_lib.train(classifier, backbone, data, cfg)
    return classifier, backbone


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_hub_dir, color_folder):
    """A 3-trial search whose trials are frozen (head checkpoints, trained on cached
    features) or fine-tuned (whole-classifier checkpoints), then the final training."""
    run = mixed_search(tmp_path_factory.mktemp("ensemble"), tiny_hub_dir, color_folder,
                       search_epochs=4, ensemble_top_k=3)
    run.final, run.backbone = _trained_classifier(
        search.apply_values(run.cfg, run.found.best_values), run.data, run.strategy)
    return run


def test_an_ensemble_of_copies_predicts_like_the_model(searched):
    images = np.concatenate([x for x, _ in searched.data.validation.as_numpy_iterator()])
    single = searched.final.predict(images, verbose=0)
    for copies in (2, 3):
        averaged = ensemble.build_ensemble([searched.final] * copies, 24).predict(images,
                                                                                   verbose=0)
        np.testing.assert_allclose(averaged, single, rtol=1e-6, atol=1e-7)  # float rounding
        assert np.array_equal(averaged.argmax(-1), single.argmax(-1))
    pair = ensemble.build_ensemble([searched.final] * 2, 24).predict(images, verbose=0)
    np.testing.assert_array_equal(pair, single)  # (p + p) / 2 is exact


def test_runner_ups_are_the_next_distinct_completed_trials(searched):
    trials = ensemble.runner_up_trials(searched.found, 2)
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    keys = [ensemble._hyperparameter_key(h) for h in
            [searched.found.best_values] + [t["hyperparameters"] for t in trials]]
    assert len(set(keys)) == len(keys)
    assert [t["score"] for t in trials] == sorted((t["score"] for t in trials), reverse=True)


def test_restored_members_reproduce_their_trial_scores(searched):
    # Every trial as a member (none counted as the final model): frozen trials left a head
    # checkpoint (trained on cached features), fine-tuned ones a whole-classifier one.
    every_trial = dataclasses.replace(searched.found, best_values={})
    trials = ensemble.runner_up_trials(every_trial, 3)
    kinds = {carry_over.holds_backbone(carry_over.trial_checkpoint(searched.cfg.output_dir,
                                                                  t["trial_id"]))
             for t in trials}
    assert kinds == {True, False}
    cfg = dataclasses.replace(searched.cfg, ensemble=dataclasses.replace(
        searched.cfg.ensemble, ensemble_top_k=4))
    built = ensemble.build_top_k(searched.final, every_trial,
                                 searched.data, cfg, searched.strategy)
    assert built.trial_ids == [t["trial_id"] for t in trials]
    modules = built.hub_modules.modules
    assert len({id(m) for m in modules}) == len(modules) == 4  # one module per member
    for trial in trials:
        member = built.model.get_layer(f"trial_{trial['trial_id']}")
        labels, probabilities = evaluate.predict_split(member, searched.data.validation)
        # The checkpoint is the trial's best epoch, the one its score comes from.
        assert np.mean(probabilities.argmax(-1) == labels) == pytest.approx(trial["score"])


def _serve_in_fresh_process(export_dir, files, tmp_path, pixels):
    out, pixels_path = str(tmp_path / "served.npz"), str(tmp_path / "pixels.npy")
    np.save(pixels_path, pixels)
    subprocess.run([sys.executable, os.path.join(TESTS, "serve_in_fresh_process.py"),
                    export_dir, out, f"--pixels={pixels_path}", *files], check=True,
                   capture_output=True, timeout=300)
    return np.load(out)


@pytest.mark.e2e
def test_the_exported_ensemble_reloads_in_a_fresh_process(searched, color_folder, tmp_path):
    block = variants.ensemble_variant(searched.final, searched.found,
                                      searched.data, searched.cfg, searched.strategy)
    assert block["members"] == 1 + len(block["trial_ids"]) >= 2
    for key in ("accuracy", "macro_f1", "auc_roc_macro_ovr", "expected_calibration_error"):
        assert key in block["test"]
    assert block["performance"]["saved_model"]["latency_ms_p50"] > 0
    export_dir = block["export_dir"]
    assert export_dir == os.path.join(searched.cfg.output_dir, "ensemble", "saved_model", "1")
    files = [os.path.join(color_folder, f"class_{c}", f"{i}.{ext}")
             for c in range(3) for i, ext in ((1, "png"), (2, "jpg"))]
    encoded = [tf.io.read_file(f) for f in files]
    pixels = np.stack([tf.io.decode_image(e, channels=3).numpy() for e in encoded])
    served = _serve_in_fresh_process(export_dir, files, tmp_path, pixels)

    rebuilt = ensemble.build_top_k(searched.final, searched.found,
                                   searched.data, searched.cfg, searched.strategy)
    expected = rebuilt.model.predict(
        np.stack([preprocess.preprocess_encoded(e, 24) for e in encoded]), verbose=0)
    names = export_layout.read_class_names(export_dir)
    for probabilities, classes in ((served["probabilities"], served["classes"]),
                                   (served["pixel_probabilities"], served["pixel_classes"])):
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        assert list(classes) == [names[i] for i in expected.argmax(axis=1)]
    rows = comparison.rows({"test": block["test"], "ensemble": block})
    assert [r["model"] for r in rows] == ["single", f"ensemble of {block['members']}"]


def test_retrained_members_train_like_the_final_model(searched):
    cfg = dataclasses.replace(searched.cfg, ensemble=dataclasses.replace(
        searched.cfg.ensemble, ensemble_top_k=2, ensemble_members="retrain"))
    built = ensemble.build_top_k(searched.final, searched.found,
                                 searched.data, cfg, searched.strategy)
    trial_id = built.trial_ids[0]
    member_dir = os.path.join(cfg.output_dir, "ensemble", f"member_{trial_id}")
    assert os.path.isfile(os.path.join(member_dir, "checkpoints", "best.weights.h5"))
    member = built.model.get_layer(f"trial_{trial_id}")
    trial = next(t for t in searched.found.trials if t["trial_id"] == trial_id)
    member_cfg = search.apply_values(cfg, trial["hyperparameters"])
    backbone, width = model_lib.build_backbone(member_cfg.backbone, 24)
    head = model_lib.build_head(width, searched.data.num_classes, member_cfg.head)
    checkpointed = model_lib.TransferClassifier(backbone, head, 24)
    checkpointed.load_weights(os.path.join(member_dir, "checkpoints", "best.weights.h5"))
    images = next(iter(searched.data.validation))[0]
    np.testing.assert_allclose(checkpointed.predict(images, verbose=0),
                               member.predict(images, verbose=0), atol=1e-6)
