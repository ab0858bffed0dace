"""Shared fixtures. TensorFlow is imported lazily: pure tests (config, layout, report format,
search space, launcher...) run without it. Whenever TensorFlow is first imported in this
process, by a test module, a fixture or the package, its first CPU is split into two logical
devices before the runtime starts, so MirroredStrategy tests really run with 2 replicas on a
machine without GPUs."""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

_two_cpus_done = False


def _configure_two_cpus(tf) -> None:
    """Two logical devices on the first physical CPU (once; a no-op if already configured)."""
    global _two_cpus_done
    if _two_cpus_done:
        return
    _two_cpus_done = True
    cpu = tf.config.list_physical_devices("CPU")[0]
    if tf.config.get_logical_device_configuration(cpu):
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError as error:  # the runtime had started: MirroredStrategy gets 1 replica
        warnings.warn(f"tests: two logical CPUs not configured: {error}")


class _TwoCpusOnTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs _configure_two_cpus right after `tensorflow` finishes importing, whoever imports
    it, before any test or fixture can start TensorFlow's runtime."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and the lookup below does not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_then_configure(module):
                exec_module(module)
                _configure_two_cpus(module)
            spec.loader.exec_module = exec_then_configure
        return spec


if "tensorflow" in sys.modules:  # imported before this file, e.g. by a plugin
    _configure_two_cpus(sys.modules["tensorflow"])
elif not any(isinstance(f, _TwoCpusOnTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _TwoCpusOnTensorFlowImport())


def pytest_collection_finish(session):
    """A check: had the import hook been bypassed, configure now (before any test runs)."""
    if "tensorflow" in sys.modules:
        _configure_two_cpus(sys.modules["tensorflow"])


TESTS = os.path.dirname(os.path.abspath(__file__))  # helper scripts live here
REPO = os.path.dirname(TESTS)  # the checkout
COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


@pytest.fixture(scope="session")
def tiny_hub_dir(tmp_path_factory) -> str:
    """The tiny TF-Hub module of tiny_hub.py. Built here when TensorFlow is already imported;
    else in a child process, so tests that only validate a config stay free of TensorFlow."""
    path = str(tmp_path_factory.mktemp("hub") / "tiny")
    if "tensorflow" not in sys.modules:
        build = f"import tiny_hub; tiny_hub.save_tiny_hub_module({path!r})"
        subprocess.run([sys.executable, "-c", build], cwd=TESTS, check=True,
                       capture_output=True, timeout=300)
        return path
    import tiny_hub
    _configure_two_cpus(sys.modules["tensorflow"])
    return tiny_hub.save_tiny_hub_module(path)


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


def check_a_run_trains_and_serves(tmp_path, color_folder, backbone: str):
    """An e2e run on `backbone` (fine-tuning its top block) that trains both phases and
    whose export serves probabilities in a fresh process; returns its config."""
    import pathlib

    import numpy as np

    from tftransfer.cli import run as run_lib

    cfg = make_config(tmp_path / "out", dataset=color_folder, backbone=backbone,
                      image_size=32, fine_tune_depth=1, epochs=2, head_epochs=1,
                      bn_inference=False)
    outputs = run_lib.run(cfg)
    assert [p["name"] for p in outputs.metrics["training"]["phases"]] == ["head", "fine_tune"]
    files = [str(p) for p in sorted(pathlib.Path(color_folder).rglob("*.png"))[:4]]
    served = serve_in_fresh_process(outputs.export_dir, files, tmp_path)
    assert served["probabilities"].shape == (4, 3)
    np.testing.assert_allclose(served["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    return cfg


def mixed_search(root, hub_dir, folder, **values):
    """A 3-trial random search whose trials are frozen (head checkpoints, trained on cached
    features) or fine-tune the top block (whole-classifier checkpoints): a namespace of
    cfg, data, strategy and found (the SearchResult). `values`: more flags."""
    import json
    import types

    from tftransfer.data import pipeline as data_lib
    from tftransfer.distribute import strategy as distribute
    from tftransfer.search import tuning as search

    space = root / "space.json"
    space.write_text(json.dumps({
        "fine_tune_depth": [0, 1], "augment": [False], "optimizer": ["adam"],
        "head_units": [""], "dropout": 0.0, "label_smoothing": [0.0],
        "learning_rate": {"min": 0.05, "max": 0.15}, "fine_tune_lr_factor": 1.0,
        "bn_inference": True}))
    cfg = make_config(root / "run", dataset=folder, hub_handle=hub_dir, seed=2,
                      search="random", max_trials=3, search_space=str(space),
                      early_stopping_patience=0, **values)
    strategy = distribute.make_strategy(cfg.strategy, cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    return types.SimpleNamespace(cfg=cfg, data=data, strategy=strategy,
                                 found=search.run_search(cfg, data, strategy))
