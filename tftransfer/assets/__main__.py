"""`python -m tftransfer.assets [--cache_dir=DIR]`: builds the offline default assets.

Writes the Lite0 feature-vector SavedModel and the prepared Fashion-MNIST into the cache
folder that experiments/quickstart.flags points at. Idempotent.
"""
import sys

from absl import app, flags, logging

from tftransfer import assets
from tftransfer.errors import UserError

_CACHE_DIR = flags.DEFINE_string("cache_dir", assets.DEFAULT_CACHE_DIR,
                                 "Folder for the offline assets.")


def main(argv) -> None:
    del argv
    try:
        built = assets.build_all(_CACHE_DIR.value)
    except (UserError, FileNotFoundError, RuntimeError) as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    logging.info("Offline assets ready: %s", built)


def entry_point() -> None:
    app.run(main)


if __name__ == "__main__":
    entry_point()
