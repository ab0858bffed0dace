import os

import pytest

from conftest import make_config
from tftransfer.errors import TrainingDiverged
from tftransfer import data as data_lib, model as model_lib, train as train_lib


def _setup(cfg):
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
    head = model_lib.build_head(width, data.num_classes, cfg.head)
    return data, backbone, model_lib.build_classifier(backbone, head, cfg.data.image_size)


def test_phases_follow_depth_and_head_epochs(tmp_path, tiny_hub_dir, color_folder):
    base = {"dataset": color_folder, "hub_handle": tiny_hub_dir}
    frozen = make_config(tmp_path, **base, fine_tune_depth=0, epochs=4, head_epochs=1)
    assert train_lib.plan_phases(frozen) == [("head", 0, 4, 1e-3)]
    tuned = make_config(tmp_path, **base, fine_tune_depth=2, epochs=4, head_epochs=1,
                        fine_tune_lr_factor=0.5)
    assert train_lib.plan_phases(tuned) == [("head", 0, 1, 1e-3), ("fine_tune", 2, 3, 5e-4)]
    direct = make_config(tmp_path, **base, fine_tune_depth=-1, epochs=3, head_epochs=0)
    assert [p[0] for p in train_lib.plan_phases(direct)] == ["fine_tune"]


def test_two_phases_learn_and_keep_the_best_weights(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=1, epochs=4, head_epochs=2, learning_rate=0.05,
                      early_stopping_patience=0)
    data, backbone, classifier = _setup(cfg)
    result = train_lib.train(classifier, backbone, data, cfg)
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
