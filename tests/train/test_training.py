import dataclasses
import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.config.errors import TrainingDiverged
from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib
from tftransfer.train import training as train_lib


def _setup(cfg):
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    classifier = model_lib.build_model(cfg, data.num_classes)
    return data, classifier.backbone, classifier


def test_phases_follow_depth_and_head_epochs(tmp_path, tiny_hub_dir, color_folder):
    base = {"dataset": color_folder, "hub_handle": tiny_hub_dir}
    frozen = make_config(tmp_path, **base, fine_tune_depth=0, epochs=4, head_epochs=1)
    assert train_lib.plan_phases(frozen) == [("head", 0, 4, 1e-3)]
    tuned = make_config(tmp_path, **base, fine_tune_depth=2, epochs=4, head_epochs=1,
                        fine_tune_lr_factor=0.5)
    assert train_lib.plan_phases(tuned) == [("head", 0, 1, 1e-3), ("fine_tune", 2, 3, 5e-4)]
    direct = make_config(tmp_path, **base, fine_tune_depth=-1, epochs=3, head_epochs=0)
    assert [p[0] for p in train_lib.plan_phases(direct)] == ["fine_tune"]
    staged = make_config(tmp_path, **base, fine_tune_depth=-1, unfreeze_schedule=(1, 2, -1),
                         epochs=5, head_epochs=1, fine_tune_lr_factor=0.5)
    assert train_lib.plan_phases(staged) == [
        ("head", 0, 1, 1e-3), ("fine_tune_1", 1, 1, 5e-4), ("fine_tune_2", 2, 1, 5e-4),
        ("fine_tune_3", -1, 2, 5e-4)]


@pytest.mark.parametrize("depth, schedule, epochs, stages", [
    (-1, (2, 6, -1), 6, [(2, 2), (6, 2), (-1, 2)]),
    (-1, (2, 6), 4, [(2, 1), (6, 1), (-1, 2)]),   # the fine-tune depth is the last stage
    (4, (2, 6, -1), 5, [(2, 2), (4, 3)]),         # deeper stages than the depth: left out
    (-1, (2, 6, -1), 2, [(6, 1), (-1, 1)]),       # too few epochs: the shallowest go
    (-1, (2, 6), 1, [(-1, 1)]),
    (4, (), 3, [(4, 3)]),
])
def test_unfreeze_stages_split_the_fine_tune_epochs(depth, schedule, epochs, stages):
    assert train_lib.unfreeze_stages(depth, schedule, epochs) == stages


def test_stages_unfreeze_ever_more_blocks_with_decaying_rates(tmp_path, tiny_hub_dir,
                                                              color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=-1, unfreeze_schedule=(1,), epochs=3, head_epochs=1,
                      layer_lr_decay=0.5, early_stopping_patience=0)
    data, backbone, classifier = _setup(cfg)
    trainable, factors = [], []
    original = classifier.compile

    def compile_and_record(*args, **kwargs):
        original(*args, **kwargs)
        trainable.append(len(backbone.trainable_weights))
        factors.append(sorted(set(getattr(kwargs["optimizer"], "rate_factors", {}).values())))
    classifier.compile = compile_and_record
    result = train_lib.train(classifier, backbone, data, cfg)
    assert [(p.name, p.fine_tune_depth, p.epochs) for p in result.phases] == [
        ("head", 0, 1), ("fine_tune_1", 1, 1), ("fine_tune_2", -1, 1)]
    assert trainable[0] == 0 < trainable[1] < trainable[2]
    decays = [0.5 ** k for k in range(len(backbone.blocks))]
    assert factors == [[], sorted(decays), sorted(decays)]


@pytest.mark.parametrize("count_known", [True, False])
def test_steps_per_epoch_count_the_batches_of_a_batch_shrunk_for_replicas(tmp_path,
                                                                          count_known):
    cfg = make_config(tmp_path, dataset=str(tmp_path), hub_handle="https://example.org/m",
                      batch_size=16)
    size, replicas = 9, 2
    batch = data_lib.replica_safe_batch_size(cfg.data.batch_size, size, replicas)
    assert batch == 6  # a first batch of 9 would not split evenly over 2 replicas
    images = tf.zeros([size, cfg.data.image_size, cfg.data.image_size, 3], tf.uint8)
    examples = tf.data.Dataset.from_tensor_slices((images, tf.range(size)))
    train = data_lib.training_pipeline(examples, cfg.data, cfg.seed, batch)
    if not count_known:
        train = train.filter(lambda *_: tf.constant(True))
        assert train.cardinality() == tf.data.UNKNOWN_CARDINALITY
    steps = train_lib.steps_per_epoch(train, size, cfg.data.batch_size, replicas)
    assert steps == sum(1 for _ in train) == 2


def test_two_phases_learn_and_keep_the_best_weights(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=1, epochs=4, head_epochs=2, learning_rate=0.05,
                      early_stopping_patience=0)
    data, backbone, classifier = _setup(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_lib.train(classifier, backbone, data, cfg)
    assert not [w for w in caught if "shuffle" in str(w.message)]  # Keras's fit default
    assert [p.name for p in result.phases] == ["head", "fine_tune"]
    assert [p.epochs for p in result.phases] == [2, 2]
    scores = classifier.evaluate(data.validation, return_dict=True, verbose=0)
    assert scores["accuracy"] == result.best_validation_accuracy
    assert result.best_validation_accuracy > 0.6  # 3 colour classes: chance is 1/3
    assert os.listdir(tmp_path / "tensorboard")


def test_nan_loss_stops_training(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, epochs=3,
                      l2=1e38)  # the penalty overflows float32: an infinite loss
    data, backbone, classifier = _setup(cfg)
    with pytest.raises(TrainingDiverged, match="training diverged in phase 'head'"):
        train_lib.train(classifier, backbone, data, cfg)
    assert not os.path.exists(tmp_path / "backup")  # diverged weights are not resumed


class _Interrupt(keras.callbacks.Callback):
    """Stops training as Ctrl-C or a kill would, when `epoch` begins."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _train_until_interrupted(monkeypatch, epoch, *train_args):
    fit = keras.Model.fit

    def interrupted_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[*(callbacks or []), _Interrupt(epoch)], **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "fit", interrupted_fit)
        with pytest.raises(KeyboardInterrupt):
            train_lib.train(*train_args)


def _fresh_model(cfg, num_classes=3):
    """A new classifier on a freshly loaded module, as a new process would build it."""
    classifier = model_lib.build_model(cfg, num_classes)
    return classifier.backbone, classifier


def test_interrupted_training_resumes_across_the_phase_boundary(tmp_path, tiny_hub_dir,
                                                                color_folder, monkeypatch):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=1, epochs=4, head_epochs=2, learning_rate=0.05,
                      early_stopping_patience=0)
    # Its head's start must not depend on the random state earlier tests leave (after
    # tests/data/test_augment.py it once reached only chance accuracy).
    keras.utils.set_random_seed(0)
    data, backbone, classifier = _setup(cfg)
    _train_until_interrupted(monkeypatch, 1, classifier, backbone, data, cfg)  # in phase 1
    backbone, classifier = _fresh_model(cfg)
    _train_until_interrupted(monkeypatch, 3, classifier, backbone, data, cfg)  # in phase 2
    assert sorted(os.listdir(tmp_path / "backup")) == [
        "fine_tune", "head", "head.finished.json", "state.json"]
    best_so_far = json.load(open(tmp_path / "backup" / "state.json"))["best_val_accuracy"]

    backbone, classifier = _fresh_model(cfg)
    result = train_lib.train(classifier, backbone, data, cfg)
    head, fine_tune = result.phases
    assert len(head.history["loss"]) == 1   # epoch 2: epoch 1 ran before the first interrupt
    assert len(fine_tune.history["loss"]) == 1  # epoch 4 only
    assert result.best_validation_accuracy >= best_so_far
    assert result.best_validation_accuracy > 0.6  # 3 colour classes: chance is 1/3
    assert not os.path.exists(tmp_path / "backup")


def test_a_backup_of_another_configuration_is_not_resumed(tmp_path, tiny_hub_dir,
                                                         color_folder, monkeypatch):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, epochs=3)
    data, backbone, classifier = _setup(cfg)
    _train_until_interrupted(monkeypatch, 2, classifier, backbone, data, cfg)
    assert os.listdir(tmp_path / "backup" / "head")
    changed = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, epochs=3,
                          learning_rate=0.01)
    backbone, classifier = _fresh_model(changed)
    _train_until_interrupted(monkeypatch, 0, classifier, backbone, data, changed)
    assert os.listdir(tmp_path / "backup") == ["state.json"]
    state = json.load(open(tmp_path / "backup" / "state.json"))
    assert state["config"]["train"]["learning_rate"] == 0.01


@pytest.mark.parametrize("mode, expected", [
    ("none", None), ("balanced", {0: 0.5, 1: 1.5, 2: 3.0})])
def test_class_weight_reaches_every_phase_from_the_training_counts(
        tmp_path, tiny_hub_dir, color_folder, monkeypatch, mode, expected):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=1, epochs=2, head_epochs=1, class_weight=mode)
    data, backbone, classifier = _setup(cfg)
    data = dataclasses.replace(data, class_counts={**data.class_counts, "train": [30, 10, 5]})
    seen, fit = [], classifier.fit

    def recorded(*args, **kwargs):
        seen.append(kwargs.get("class_weight"))
        return fit(*args, **kwargs)
    monkeypatch.setattr(classifier, "fit", recorded)
    train_lib.train(classifier, backbone, data, cfg)
    assert len(seen) == 2 and all(w == (expected and pytest.approx(expected)) for w in seen)


def test_with_ema_validation_sees_the_average_and_the_phase_ends_holding_it(
        tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=0, epochs=3, learning_rate=0.05, ema=True,
                      ema_momentum=0.9)
    data, backbone, classifier = _setup(cfg)
    before = [v.numpy() for v in classifier.trainable_variables]
    phases = train_lib.run_phases(classifier, backbone, data.train, data.validation,
                                  data.sizes["train"], data.num_classes, cfg, [])
    optimizer = classifier.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9
    final = [v.numpy() for v in classifier.trainable_variables]
    averaged = [v.numpy() for v in optimizer._model_variables_moving_average]
    assert all(np.allclose(a, f) for a, f in zip(averaged, final))   # finalized
    assert not all(np.allclose(b, f) for b, f in zip(before, final))
    # The last validation ran on the weights the phase ended with: the average.
    scores = classifier.evaluate(data.validation, return_dict=True, verbose=0)
    assert phases[-1].history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-4)
    assert phases[-1].ema_momentum == pytest.approx(0.9)   # metrics.json's phases hold it
