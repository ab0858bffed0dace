"""Offline, real assets: an ImageNet-pretrained EfficientNet-Lite0 in TF-Hub format and
Fashion-MNIST as a prepared TFDS dataset, built from registry packages (no network)."""
import os

DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tftransfer")
LITE0_SUBDIR = os.path.join("hub", "efficientnet_lite0_feature_vector")
TFDS_SUBDIR = "tensorflow_datasets"


def lite0_dir(cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    return os.path.join(os.path.expanduser(cache_dir), LITE0_SUBDIR)


def tfds_dir(cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    return os.path.join(os.path.expanduser(cache_dir), TFDS_SUBDIR)


def build_all(cache_dir: str = DEFAULT_CACHE_DIR) -> dict[str, str]:
    """Builds (or finds) both assets; returns {"hub_handle": ..., "data_dir": ...}."""
    from tftransfer.assets import efficientnet_lite, fashion_mnist

    handle = efficientnet_lite.build_offline_backbone(lite0_dir(cache_dir))
    data_dir = tfds_dir(cache_dir)
    fashion_mnist.prepare_fashion_mnist(data_dir)
    return {"hub_handle": handle, "data_dir": data_dir}
