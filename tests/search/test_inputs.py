"""A search's inputs: subsets and cached features per resolution, and their errors."""
import pytest
from conftest import make_config

from tftransfer.config.errors import UserError
from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib
from tftransfer.search import inputs, space as search_space


def _space(**changes) -> dict:
    space = {"fine_tune_depth": search_space.Choice((0, 1)),
             "augment": search_space.Choice((False, True))}
    return {**space, **changes}


def test_the_cache_serves_only_frozen_trials_without_augmentation():
    assert inputs.may_use_cache(_space())
    assert inputs.may_use_cache(_space(augment=search_space.Fixed(False)))
    assert not inputs.may_use_cache(_space(augment=search_space.Fixed(True)))
    assert not inputs.may_use_cache(_space(fine_tune_depth=search_space.Choice((1, -1))))


def test_a_search_without_validation_data_names_the_cause(tmp_path, tiny_hub_dir,
                                                          color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      validation_fraction=0.0)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    with pytest.raises(UserError, match=r"needs validation data: --validation_fraction=0 "):
        inputs.SearchInputs(cfg, data, _space(), 1, None)


def test_each_size_is_prepared_once_from_the_same_examples(tmp_path, tiny_hub_dir,
                                                           color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, augment=False,
                      image_size=24, search_fraction=0.5)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    backbone, _ = model_lib.build_backbone(cfg.backbone, 24)
    prepared = inputs.SearchInputs(cfg, data, _space(), 1, backbone)
    own, smaller = prepared.at(24), prepared.at(16)
    assert prepared.at(16) is smaller and own.cached is not None
    assert own.train_size == smaller.train_size < data.sizes["train"]
    assert own.cached["train"][0].shape == smaller.cached["train"][0].shape
    assert list(own.cached["validation"][1].numpy()) == list(
        smaller.cached["validation"][1].numpy())
