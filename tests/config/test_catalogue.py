"""--backbone=NAME: the catalogue's entries and how validation resolves a name (pure: no
TensorFlow)."""
from __future__ import annotations

import re

import pytest
from conftest import make_config

from tftransfer.config import catalogue, run_config as config_lib
from tftransfer.config.run_config import DEFAULT_BLOCK_PATTERN, ConfigError
from tftransfer.model import blocks as blocks_lib


def _config(tmp_path, **values):
    return make_config(tmp_path / "out", dataset="mnist", image_size=0, **values)


@pytest.mark.parametrize("name", sorted(catalogue.CATALOGUE))
def test_every_entry_is_a_tfhub_handle_or_an_asset_with_a_size_and_a_block_pattern(name):
    entry = catalogue.CATALOGUE[name]
    assert entry.handle.startswith("https://tfhub.dev/") or entry.offline_subdir
    assert entry.image_size in (224, 240, 260, 300, 384)
    assert re.compile(entry.block_pattern).groups == 1
    assert entry.input_range == (0.0, 1.0)  # what the input pipeline feeds


@pytest.mark.parametrize("name, handle, size, pattern", [
    ("mobilenet_v3_large",
     "https://tfhub.dev/google/imagenet/mobilenet_v3_large_100_224/feature_vector/5", 224,
     catalogue.MOBILENET_BLOCKS),
    ("efficientnetv2_s",
     "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_s/feature_vector/2", 384,
     catalogue.EFFICIENTNET_BLOCKS),
    ("bit_m_r50x1", "https://tfhub.dev/google/bit/m-r50x1/1", 224, catalogue.RESNET_BLOCKS),
])
def test_a_name_sets_the_handle_the_block_pattern_and_the_native_size(tmp_path, name, handle,
                                                                      size, pattern):
    cfg = _config(tmp_path, backbone=name)
    assert cfg.backbone.hub_handle == handle
    assert cfg.backbone.block_pattern == pattern
    assert cfg.data.image_size == 0  # left open: the run resizes to the native size
    assert config_lib.native_image_size(cfg.backbone) == size


def test_without_a_name_the_native_size_is_224(tmp_path, tiny_hub_dir):
    cfg = _config(tmp_path, hub_handle=tiny_hub_dir)
    assert config_lib.native_image_size(cfg.backbone) == config_lib.NATIVE_IMAGE_SIZE == 224
    assert cfg.backbone.block_pattern == DEFAULT_BLOCK_PATTERN


def test_an_unknown_name_is_one_line_listing_the_names(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, backbone="resnet51")
    assert raised.value.flag == "backbone"
    message = str(raised.value)
    assert "\n" not in message and message.startswith("--backbone: unknown backbone 'resnet51'")
    assert all(name in message for name in catalogue.CATALOGUE)


def test_hub_handle_says_where_to_load_the_named_model_from(tmp_path, tiny_hub_dir):
    cfg = _config(tmp_path, backbone="efficientnetv2_b0", hub_handle=tiny_hub_dir)
    assert cfg.backbone.hub_handle == tiny_hub_dir  # a local copy, say
    assert cfg.backbone.block_pattern == catalogue.EFFICIENTNET_BLOCKS


def test_a_changed_block_pattern_is_kept(tmp_path):
    cfg = _config(tmp_path, backbone="resnet50_v2", block_pattern=r"(block\d+)/")
    assert cfg.backbone.block_pattern == r"(block\d+)/"


def test_efficientnet_lite0_is_the_offline_asset_once_built(tmp_path, monkeypatch):
    monkeypatch.setenv(catalogue.CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="build it first with `python -m tftransfer.assets`"):
        _config(tmp_path, backbone="efficientnet_lite0")
    asset = tmp_path / "cache" / catalogue.LITE0_SUBDIR
    asset.mkdir(parents=True)
    (asset / "saved_model.pb").write_bytes(b"")
    cfg = _config(tmp_path, backbone="efficientnet_lite0")
    assert cfg.backbone.hub_handle == str(asset)
    assert cfg.backbone.block_pattern == catalogue.EFFICIENTNET_BLOCKS


def test_the_assets_are_built_where_the_catalogue_looks(tmp_path, monkeypatch):
    from tftransfer import assets

    monkeypatch.setenv(catalogue.CACHE_DIR_VARIABLE, str(tmp_path))
    assert assets.lite0_dir() == str(tmp_path / catalogue.LITE0_SUBDIR)
    assert assets.tfds_dir("~/elsewhere").startswith("/")
    monkeypatch.delenv(catalogue.CACHE_DIR_VARIABLE)
    assert catalogue.cache_dir().endswith("/.cache/tftransfer")


# Variable names as each family's SavedModel names them, bottom to top.
FAMILIES = {
    catalogue.EFFICIENTNET_BLOCKS: (
        ["efficientnetv2-b0/stem/conv2d/kernel:0", "efficientnetv2-b0/blocks_0/conv2d/kernel:0",
         "efficientnetv2-b0/blocks_1/conv2d/kernel:0", "efficientnetv2-b0/blocks_10/tpu_"
         "batch_normalization/gamma:0", "efficientnetv2-b0/head/conv2d/kernel:0"],
        ["stem", "blocks_0", "blocks_1", "blocks_10"]),
    catalogue.MOBILENET_BLOCKS: (
        ["MobilenetV2/Conv/weights:0", "MobilenetV2/expanded_conv/depthwise/depthwise_"
         "weights:0", "MobilenetV2/expanded_conv_1/expand/weights:0",
         "MobilenetV2/expanded_conv_16/project/weights:0", "MobilenetV2/Conv_1/weights:0"],
        ["stem", "expanded_conv", "expanded_conv_1", "expanded_conv_16"]),
    catalogue.RESNET_BLOCKS: (
        ["resnet_v2_50/conv1/weights:0", "resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/"
         "weights:0", "resnet_v2_50/block1/unit_2/bottleneck_v2/conv1/weights:0",
         "resnet_v2_50/block4/unit_3/bottleneck_v2/conv3/weights:0",
         "resnet_v2_50/postnorm/gamma:0"],
        ["stem", "block1/unit_1", "block1/unit_2", "block4/unit_3"]),
}


@pytest.mark.parametrize("pattern", sorted(FAMILIES))
def test_each_family_pattern_finds_its_blocks(pattern):
    names, blocks = FAMILIES[pattern]
    assert [b.name for b in blocks_lib.group_blocks(names, pattern)] == blocks


def test_the_resnet_pattern_also_reads_bit_unit_names():
    names = ["resnet/root_block/standardized_conv2d/kernel:0",
             "resnet/block1/unit01/a/standardized_conv2d/kernel:0",
             "resnet/block4/unit03/c/standardized_conv2d/kernel:0"]
    blocks = blocks_lib.group_blocks(names, catalogue.RESNET_BLOCKS)
    assert [b.name for b in blocks] == ["stem", "block1/unit01", "block4/unit03"]


def test_a_keras_application_gets_its_size_and_the_keras_block_pattern(tmp_path):
    cfg = _config(tmp_path, backbone="keras:EfficientNetV2S")
    assert cfg.backbone.hub_handle == "keras:EfficientNetV2S"
    assert cfg.backbone.block_pattern == catalogue.KERAS_BLOCKS
    assert config_lib.native_image_size(cfg.backbone) == 384
    same = _config(tmp_path, hub_handle="keras:ResNet50V2")  # as --hub_handle: the same
    assert same.backbone.block_pattern == catalogue.KERAS_BLOCKS
    assert config_lib.native_image_size(same.backbone) == 224


def test_a_keras_weights_file_is_checked_and_its_path_expanded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--hub_handle: no weights file"):
        _config(tmp_path, backbone="keras:MobileNetV3Small@missing.weights.h5")
    (tmp_path / "small.weights.h5").write_bytes(b"")
    cfg = _config(tmp_path, backbone="keras:MobileNetV3Small@small.weights.h5")
    assert cfg.backbone.hub_handle == f"keras:MobileNetV3Small@{tmp_path}/small.weights.h5"
    with pytest.raises(ConfigError, match="--backbone: unknown backbone 'keras:not-a-name'"):
        _config(tmp_path, backbone="keras:not-a-name")


KERAS_LAYERS = {
    "EfficientNetV2B0": (["stem_conv/kernel", "block1a_project_conv/kernel",
                          "block6h_se_reduce/bias", "top_conv/kernel"],
                         ["stem", "block1a", "block6h"]),
    "MobileNetV2": (["Conv1/kernel", "expanded_conv_depthwise/depthwise_kernel",
                     "block_1_expand/kernel", "block_16_project_BN/gamma", "Conv_1/kernel"],
                    ["stem", "expanded_conv", "block_1", "block_16"]),
    "ResNet50V2": (["conv1_conv/kernel", "conv2_block1_preact_bn/gamma",
                    "conv5_block3_3_conv/bias", "post_bn/gamma"],
                   ["stem", "conv2_block1", "conv5_block3"]),
    "ConvNeXtTiny": (["convnext_tiny_stem/convnext_tiny_stem_conv/kernel",
                      "convnext_tiny_stage_0_block_0_depthwise_conv/kernel",
                      "convnext_tiny_stage_3_block_2_pointwise_conv_2/bias",
                      "layer_normalization/gamma"],
                     ["stem", "stage_0_block_0", "stage_3_block_2"]),
}


@pytest.mark.parametrize("app", sorted(KERAS_LAYERS))
def test_the_keras_pattern_finds_each_applications_blocks(app):
    names, blocks = KERAS_LAYERS[app]
    found = blocks_lib.group_blocks(names, catalogue.KERAS_BLOCKS)
    assert [b.name for b in found] == blocks


@pytest.mark.parametrize("path, block", [
    ("stack1_block0_1_conv/kernel", "stack1_block0"),               # ResNet
    ("block_3_1_expand_conv/kernel", "block_3_1"),                   # MobileNet
    ("block4a_expand_conv/kernel", "block4a"),                       # EfficientNet
    ("block3_conv2/kernel", "block3"),                               # VGG
    ("transformer_block_5/attention/query/kernel", "transformer_block_5"),  # ViT, DeiT
    ("stage_2_block_1_conv/kernel", "stage_2_block_1"),              # CSPNet
    ("encoder/layers_7/mlp/dense/kernel", "layers_7"),               # DINOv2
    ("conv1_conv/kernel", None),                                     # the stem
])
def test_keras_hub_block_names(path, block):
    found = re.search(catalogue.KERAS_HUB_BLOCKS, path)
    assert (found.group(1) if found else None) == block


def test_a_keras_hub_preset_is_looked_up_by_its_handle():
    entry = catalogue.lookup("keras_hub:resnet_50_imagenet")
    assert (entry.handle, entry.image_size, entry.block_pattern) == (
        "keras_hub:resnet_50_imagenet", 224, catalogue.KERAS_HUB_BLOCKS)
