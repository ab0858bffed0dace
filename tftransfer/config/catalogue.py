"""Well-known feature-vector backbones by name (--backbone), and where the offline assets
live. Pure data: no TensorFlow; validation.py resolves a name before TensorFlow starts.

Every entry is a TF2 reusable SavedModel (tensorflow_hub resolves its tfhub.dev handle,
through Kaggle, into TFHUB_CACHE_DIR) that takes images in [0, 1], the range the input
pipeline feeds (data/preprocess.py). The EfficientNet-Lite models on tfhub.dev are TF1 Hub
modules, which cannot be fine-tuned here: `efficientnet_lite0` is the offline asset that
`python -m tftransfer.assets` builds in the TF2 format, and Lite1-4 are not catalogued.
Nor are tfhub.dev's EfficientNet B0-B7, whose block names could not be checked offline.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping

CACHE_DIR_VARIABLE = "TFTRANSFER_CACHE_DIR"   # overrides DEFAULT_CACHE_DIR
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tftransfer")
LITE0_SUBDIR = os.path.join("hub", "efficientnet_lite0_feature_vector")
TFDS_SUBDIR = "tensorflow_datasets"

# Blocks as the variables name them (model/blocks.py takes a name's first group).
EFFICIENTNET_BLOCKS = r"(?:^|/)(blocks_\d+)(?:/|$)"          # efficientnetv2-b0/blocks_3/...
MOBILENET_BLOCKS = r"(?:^|/)(expanded_conv(?:_\d+)?)(?:/|$)"  # MobilenetV2/expanded_conv_3/...
RESNET_BLOCKS = r"(?:^|/)(block\d+/unit_?\d+)(?:/|$)"         # resnet_v2_50/block1/unit_1/...,
                                                              # BiT: resnet/block1/unit01/...
# Keras 3 applications (keras:NAME): blocks in their layer names, e.g. block6a_expand_conv
# (EfficientNet, V2), block_8_project (MobileNetV2), expanded_conv_5_project (V3),
# conv4_block2_preact_bn (ResNet), convnext_tiny_stage_2_block_1_... (ConvNeXt).
KERAS_BLOCKS = (r"^(?:convnext_\w+?_)?(block\d+[a-z]|block_\d+|expanded_conv(?:_\d+)?"
                r"|conv\d+_block\d+|stage_\d+_block_\d+)_")
KERAS_PREFIX = "keras:"
# KerasHub image backbones (keras_hub:PRESET): ResNet's stack1_block0, MobileNet's
# block_3_1, EfficientNet's block4a, VGG's and Xception's block3, ViT's and DeiT's
# transformer_block_5, CSPNet's stage_2_block_1, DINOv2's layers_7.
KERAS_HUB_BLOCKS = (r"(?:^|/)(stack\d+_block\d+|stage_\d+_block_\d+|transformer_block_\d+"
                    r"|layers_\d+|block\d+[a-z]|block_?\d+(?:_\d+)?)(?:_|/)")
KERAS_HUB_PREFIX = "keras_hub:"
# Their native sizes, where not 224.
KERAS_SIZES = {"EfficientNetB1": 240, "EfficientNetB2": 260, "EfficientNetB3": 300,
               "EfficientNetB4": 380, "EfficientNetB5": 456, "EfficientNetB6": 528,
               "EfficientNetB7": 600, "EfficientNetV2B1": 240, "EfficientNetV2B2": 260,
               "EfficientNetV2B3": 300, "EfficientNetV2S": 384, "EfficientNetV2M": 480,
               "EfficientNetV2L": 480, "InceptionV3": 299, "InceptionResNetV2": 299,
               "Xception": 299, "NASNetLarge": 331}
TFHUB = "https://tfhub.dev/"


@dataclasses.dataclass(frozen=True)
class Backbone:
    handle: str              # tfhub.dev handle; "" for an offline asset only
    image_size: int          # the resolution it was trained at: --image_size=0's default
    block_pattern: str       # --block_pattern's default for it
    offline_subdir: str = ""  # under the cache folder, once `python -m tftransfer.assets` ran
    input_range: tuple[float, float] = (0.0, 1.0)   # pixel values it takes (all: [0, 1])


CATALOGUE: dict[str, Backbone] = {
    "efficientnet_lite0": Backbone("", 224, EFFICIENTNET_BLOCKS, offline_subdir=LITE0_SUBDIR),
    "efficientnetv2_b0": Backbone(
        f"{TFHUB}google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2", 224,
        EFFICIENTNET_BLOCKS),
    "efficientnetv2_b3": Backbone(
        f"{TFHUB}google/imagenet/efficientnet_v2_imagenet1k_b3/feature_vector/2", 300,
        EFFICIENTNET_BLOCKS),
    "efficientnetv2_s": Backbone(
        f"{TFHUB}google/imagenet/efficientnet_v2_imagenet1k_s/feature_vector/2", 384,
        EFFICIENTNET_BLOCKS),
    "efficientnetv2_s_21k": Backbone(
        f"{TFHUB}google/imagenet/efficientnet_v2_imagenet21k_ft1k_s/feature_vector/2", 384,
        EFFICIENTNET_BLOCKS),
    "mobilenet_v2": Backbone(f"{TFHUB}google/imagenet/mobilenet_v2_100_224/feature_vector/5",
                             224, MOBILENET_BLOCKS),
    "mobilenet_v3_large": Backbone(
        f"{TFHUB}google/imagenet/mobilenet_v3_large_100_224/feature_vector/5", 224,
        MOBILENET_BLOCKS),
    "mobilenet_v3_small": Backbone(
        f"{TFHUB}google/imagenet/mobilenet_v3_small_100_224/feature_vector/5", 224,
        MOBILENET_BLOCKS),
    "resnet50_v2": Backbone(f"{TFHUB}google/imagenet/resnet_v2_50/feature_vector/5", 224,
                            RESNET_BLOCKS),
    "bit_m_r50x1": Backbone(f"{TFHUB}google/bit/m-r50x1/1", 224, RESNET_BLOCKS),
}


def cache_dir(environ: Mapping[str, str] = os.environ) -> str:
    """The offline assets' folder: $TFTRANSFER_CACHE_DIR, else ~/.cache/tftransfer."""
    return os.path.expanduser(environ.get(CACHE_DIR_VARIABLE) or DEFAULT_CACHE_DIR)


def keras_app(handle: str) -> tuple[str, str] | None:
    """`keras:NAME` or `keras:NAME@WEIGHTS_FILE` -> (NAME, WEIGHTS_FILE or ""); else None."""
    if not handle.startswith(KERAS_PREFIX):
        return None
    name, _, weights = handle[len(KERAS_PREFIX):].partition("@")
    return name, weights


def keras_hub_preset(handle: str) -> str | None:
    """`keras_hub:PRESET` -> PRESET (a preset name or a local preset folder); else None."""
    return handle[len(KERAS_HUB_PREFIX):] if handle.startswith(KERAS_HUB_PREFIX) else None


def preset_image_size(preset: str) -> int:
    """A local preset's native resolution, from its image converter's config; else 224
    (a named preset's is known only once downloaded)."""
    try:
        with open(os.path.join(preset, "image_converter.json"), encoding="utf-8") as f:
            size = json.load(f)["config"]["image_size"]
        return int(size[0]) if size else 224
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return 224


def lookup(name: str) -> Backbone:
    """The entry of `name` (or of keras:NAME[@WEIGHTS_FILE], a Keras application with
    ImageNet weights, or those in the file); ValueError naming every entry if none."""
    app = keras_app(name)
    if app is not None and app[0].isidentifier():
        return Backbone(name, KERAS_SIZES.get(app[0], 224), KERAS_BLOCKS)
    preset = keras_hub_preset(name)
    if preset:
        return Backbone(name, preset_image_size(preset), KERAS_HUB_BLOCKS)
    if name not in CATALOGUE:
        raise ValueError(f"unknown backbone '{name}'; choose from {', '.join(CATALOGUE)}, "
                         "or keras:NAME for keras.applications.NAME, or keras_hub:PRESET")
    return CATALOGUE[name]


def handle(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """What to load for `name`: its offline asset once built, else its tfhub.dev handle;
    ValueError if it has neither."""
    entry = lookup(name)
    if entry.offline_subdir:
        folder = os.path.join(cache_dir(environ), entry.offline_subdir)
        if os.path.isfile(os.path.join(folder, "saved_model.pb")):
            return folder
    if not entry.handle:
        raise ValueError(f"{name} is an offline asset: build it first with `python -m "
                         f"tftransfer.assets` (expected in {cache_dir(environ)})")
    return entry.handle
