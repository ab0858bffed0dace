"""Builds the offline default assets: an ImageNet-pretrained EfficientNet-Lite0 in TF-Hub
format and the prepared Fashion-MNIST, from installed packages (no network). Idempotent.

Usage: python -m tftransfer.assets [--cache_dir=DIR]

Then: python -m tftransfer.run --flagfile=experiments/quickstart.flags
"""
# experiments/quickstart.flags points at the default cache folder; --backbone=
# efficientnet_lite0 finds the model in $TFTRANSFER_CACHE_DIR or that folder.
from absl import flags, logging

from tftransfer import assets
from tftransfer.cli import common
from tftransfer.config.errors import UserError

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("cache_dir", "", "Folder for the offline assets (default: "
                                         "$TFTRANSFER_CACHE_DIR, else ~/.cache/tftransfer).")


def main(argv) -> None:
    del argv
    common.start_tensorflow()
    with common.user_errors():
        try:
            built = assets.build_all(FLAGS.cache_dir)
        except (FileNotFoundError, RuntimeError) as e:  # a missing Debian file or package
            raise UserError(str(e)) from None
    logging.info("Offline assets ready: %s", built)


def entry_point() -> None:
    common.start(main, define_flags)


if __name__ == "__main__":
    entry_point()
