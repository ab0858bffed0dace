"""Offline, real assets: an ImageNet-pretrained EfficientNet-Lite0 in TF-Hub format and
Fashion-MNIST as a prepared TFDS dataset, built from registry packages (no network).

They live in $TFTRANSFER_CACHE_DIR, else ~/.cache/tftransfer (config/catalogue.py, where
--backbone=efficientnet_lite0 finds the Lite0 model)."""
import os


def _root(cache_dir: str | None) -> str:
    from tftransfer.config import catalogue  # lazily: this package's import stays light

    return os.path.expanduser(cache_dir) if cache_dir else catalogue.cache_dir()


def lite0_dir(cache_dir: str | None = None) -> str:
    from tftransfer.config import catalogue

    return os.path.join(_root(cache_dir), catalogue.LITE0_SUBDIR)


def tfds_dir(cache_dir: str | None = None) -> str:
    from tftransfer.config import catalogue

    return os.path.join(_root(cache_dir), catalogue.TFDS_SUBDIR)


def build_all(cache_dir: str | None = None) -> dict[str, str]:
    """Builds (or finds) both assets; returns {"hub_handle": ..., "data_dir": ...}."""
    from tftransfer.assets import efficientnet_lite, fashion_mnist

    handle = efficientnet_lite.build_offline_backbone(lite0_dir(cache_dir))
    data_dir = tfds_dir(cache_dir)
    fashion_mnist.prepare_fashion_mnist(data_dir)
    return {"hub_handle": handle, "data_dir": data_dir}
