"""Shared fixtures. Two logical CPU devices are configured before TensorFlow initialises,
so MirroredStrategy tests really run with 2 replicas on a machine without GPUs."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import tiny_hub  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

TESTS = os.path.dirname(os.path.abspath(__file__))  # helper scripts live here
REPO = os.path.dirname(TESTS)  # the checkout
COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


@pytest.fixture(scope="session")
def tiny_hub_dir(tmp_path_factory) -> str:
    return tiny_hub.save_tiny_hub_module(str(tmp_path_factory.mktemp("hub") / "tiny"))


def write_color_folder(root, per_class: int = 30, size=(36, 44), seed: int = 0) -> str:
    """Class folders of noisy solid-colour images (PNG and JPEG), easy to learn."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for label, color in enumerate(COLORS):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(color, 30, size + (3,)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(os.path.join(folder, f"{i}.{'png' if i % 2 else 'jpg'}"))
    return str(root)


@pytest.fixture(scope="session")
def color_folder(tmp_path_factory) -> str:
    return write_color_folder(tmp_path_factory.mktemp("colors"))


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory) -> str:
    """The real Fashion-MNIST, prepared as a TFDS dataset from Debian's files (~20 s)."""
    from tftransfer.assets import fashion_mnist
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    assert fashion_mnist.prepare_fashion_mnist(data_dir) == "fashion_mnist"
    return data_dir


@pytest.fixture(scope="session")
def lite0_handle(tmp_path_factory) -> str:
    """The ImageNet-pretrained EfficientNet-Lite0 feature vector in TF-Hub format (~6 s)."""
    from tftransfer.assets import efficientnet_lite
    return efficientnet_lite.build_offline_backbone(
        str(tmp_path_factory.mktemp("hub") / "efficientnet_lite0"))


def serve_in_fresh_process(export_dir, files, tmp_path, pixels=None):
    """serving_default on the encoded files (and serving_pixels on `pixels`), in a new process."""
    out = str(tmp_path / "served.npz")
    extra = []
    if pixels is not None:
        np.save(tmp_path / "pixels.npy", pixels)
        extra = [f"--pixels={tmp_path / 'pixels.npy'}"]
    subprocess.run([sys.executable, os.path.join(TESTS, "serve_in_fresh_process.py"), export_dir,
                    out, *extra, *files], check=True, capture_output=True, timeout=300)
    return np.load(out)


def make_config(output_dir, **values):
    """A validated RunConfig from flag-style values (small, fast defaults for tests)."""
    from tftransfer.config import run_config as config_lib
    from tftransfer.config.validation import validate
    defaults = {"image_size": 24, "batch_size": 16, "epochs": 2, "head_epochs": 1,
                "output_dir": str(output_dir), "augmentations": ["flip"]}
    return validate(config_lib.from_flat({**defaults, **values}))
