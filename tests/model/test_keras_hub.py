"""keras_hub:PRESET backbones: a small KerasHub ResNet saved as a local preset (random
weights, no download), adopted like a hub module and fine-tuned over its own blocks."""
from __future__ import annotations

import json
import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.config import catalogue
from tftransfer.config.errors import BackboneError
from tftransfer.model import backbone as backbone_lib, blocks as blocks_lib


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory) -> str:
    """A two-stack ResNet with its image converter (ImageNet's scaling), saved as a preset."""
    keras.utils.set_random_seed(5)
    model = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 2], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3))
    path = str(tmp_path_factory.mktemp("keras_hub") / "tiny_resnet")
    model.save_to_preset(path)
    keras_hub.layers.ResNetImageConverter(
        image_size=(40, 40), scale=[1 / (255 * s) for s in (0.229, 0.224, 0.225)],
        offset=[-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
    ).save_to_preset(path)
    return path


def _backbone(preset_dir, bn_inference=True):
    return backbone_lib.HubBackbone(f"keras_hub:{preset_dir}", catalogue.KERAS_HUB_BLOCKS,
                                    bn_inference)


def test_a_preset_is_a_feature_vector_with_its_own_blocks(preset_dir):
    backbone = _backbone(preset_dir)
    assert backbone.probe(32) == 16
    names = [b.name for b in backbone.blocks]
    assert names == [blocks_lib.STEM, "stack0_block0", "stack1_block0", "stack1_block1"]
    assert catalogue.lookup(f"keras_hub:{preset_dir}").image_size == 40


def test_pixels_in_0_1_reach_the_backbone_scaled_as_the_converter_says(preset_dir):
    module = backbone_lib.load_module(f"keras_hub:{preset_dir}")
    base = keras_hub.models.Backbone.from_preset(preset_dir)
    images = tf.random.stateless_uniform([2, 32, 32, 3], [0, 1])
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = base((images - mean) / std).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(module(images).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_fine_tuning_depth_1_trains_only_the_top_block(preset_dir):
    backbone = _backbone(preset_dir, bn_inference=False)
    backbone.set_fine_tune_depth(1)
    images = keras.Input((32, 32, 3))
    model = keras.Model(images, keras.layers.Dense(3, activation="softmax")(backbone(images)))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    before = [v.numpy().copy() for v in backbone.module.variables]
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 32, 32, 3), dtype=np.float32), rng.integers(0, 3, 8),
              epochs=1, batch_size=8, verbose=0)
    changed = {backbone.variable_names[i] for i, v in enumerate(backbone.module.variables)
               if backbone._can_train[i] and not np.array_equal(before[i], v.numpy())}
    assert changed and all(name.startswith("stack1_block1_") for name in changed)


def test_a_missing_preset_is_one_line(tmp_path):
    with pytest.raises(BackboneError, match="^--backbone: cannot load KerasHub preset"):
        backbone_lib.load_module(f"keras_hub:{tmp_path}")


def test_a_preset_folder_is_checked_before_tensorflow_starts(tmp_path, color_folder):
    from conftest import make_config
    from tftransfer.config.run_config import ConfigError

    with pytest.raises(ConfigError, match="no KerasHub preset"):
        make_config(tmp_path, dataset=color_folder, backbone=f"keras_hub:{tmp_path}/none")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "config.json").write_text(json.dumps({}))
    cfg = make_config(tmp_path, dataset=color_folder, backbone=f"keras_hub:{tmp_path}/p")
    assert cfg.backbone.hub_handle == "keras_hub:" + os.path.join(str(tmp_path), "p")
    assert cfg.backbone.block_pattern == catalogue.KERAS_HUB_BLOCKS


@pytest.mark.e2e
def test_a_run_on_a_keras_hub_preset_trains_and_exports(tmp_path, color_folder, preset_dir):
    from conftest import check_a_run_trains_and_serves

    check_a_run_trains_and_serves(tmp_path, color_folder, f"keras_hub:{preset_dir}")
