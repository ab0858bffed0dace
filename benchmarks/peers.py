"""tftransfer against AutoKeras on the same folder dataset and the same wall time: test
accuracy of each; the ratio printed last is tftransfer's / AutoKeras's (the aim: >= 1).

- tftransfer: `python -m tftransfer.run --dataset=FOLDER --hub_handle=LITE0
  --time_budget=B` and nothing else, as a subprocess; its wall time W is measured.
- AutoKeras 3.0: its default `ak.ImageClassifier()` (its tuner's first trial is its
  known-good small CNN from scratch, the second a ResNet at ImageNet size), fitted on the
  same training and validation images with a callback that ends training once W has passed
  since the fit began (AutoKeras has no time limit of its own), then evaluated on the same
  test images. AutoKeras 3.0.0 passes a numpy integer to `Dense(units=...)`, which Keras
  3.15 refuses: the one-line workaround below casts it.

FOLDER is made by benchmarks/_folders.py: `fashion` (the offline Fashion-MNIST's 10
classes, 28 px grey, --per_class training images each) by default, `coarse` (4 class
groups of it at 64 px RGB) or `digits` (scikit-learn's real 8 px handwritten digits, at
most about 110 training images per class). --quick: a 120 s budget on a small folder at
32 px.

    python3 benchmarks/peers.py [--quick] [--kind=fashion|coarse|digits] [--per_class=100]
        [--budget=3m]
"""
from __future__ import annotations

import os
import time

import _common
import _folders


def _add_arguments(parser) -> None:
    parser.add_argument("--kind", default="fashion", choices=("fashion", "coarse", "digits"))
    parser.add_argument("--per_class", type=int, default=100)
    parser.add_argument("--budget", default="3m")


def _images(folder: str, split: str, size: int | None):
    """(images [N, H, W, 3] uint8, labels [N]) of one split folder, classes sorted."""
    import numpy as np
    from PIL import Image

    root = os.path.join(folder, split)
    images, labels = [], []
    for label, name in enumerate(sorted(os.listdir(root))):
        for file in sorted(os.listdir(os.path.join(root, name))):
            image = Image.open(os.path.join(root, name, file)).convert("RGB")
            if size:
                image = image.resize((size, size), Image.BILINEAR)
            images.append(np.asarray(image))
            labels.append(label)
    return np.stack(images), np.asarray(labels)


def _patch_dense_units() -> None:
    import keras

    init = keras.layers.Dense.__init__

    def dense_init(self, units, *args, **kwargs):
        init(self, int(units), *args, **kwargs)
    keras.layers.Dense.__init__ = dense_init


def _autokeras(folder: str, seconds: float, size: int | None) -> float:
    import autokeras as ak
    import keras

    _patch_dense_units()
    (x, y), validation, test = (_images(folder, s, size)
                                for s in ("train", "validation", "test"))
    start = time.monotonic()

    classifier = ak.ImageClassifier(overwrite=True, seed=0,
                                    directory=_common.scratch_dir("autokeras"))

    class StopAtWallTime(keras.callbacks.Callback):
        """Ends the trial in progress, and the search with it, once the time is up."""
        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - start > seconds:
                self.model.stop_training = True
                oracle = classifier.tuner.oracle
                oracle.max_trials = min(oracle.max_trials, len(oracle.trials))

    classifier.fit(x, y, validation_data=validation, callbacks=[StopAtWallTime()], verbose=0)
    predicted = classifier.predict(test[0], verbose=0).astype(int).ravel()
    return float((predicted == test[1]).mean())


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    _common.print_machine()
    from tftransfer import assets

    handle = assets.build_all()["hub_handle"]
    budget, per_class, extra, size = args.budget, args.per_class, [], None
    if args.quick:
        budget, per_class, extra, size = "120s", 20, ["--image_size=32"], 32
    folder = _folders.make(args.kind, _common.scratch_dir("folder"), per_class)
    seconds, metrics = _common.run_tftransfer("tftransfer", [
        f"--dataset={folder}", f"--hub_handle={handle}", f"--time_budget={budget}", *extra])
    ours = metrics["test"]["accuracy"]
    print(f"tftransfer --time_budget={budget}: test accuracy {ours * 100:.1f} % in "
          f"{seconds:.0f} s", flush=True)
    start = time.perf_counter()
    theirs = _autokeras(folder, seconds, size)
    print(f"AutoKeras ImageClassifier, stopped after {seconds:.0f} s of fitting: test "
          f"accuracy {theirs * 100:.1f} % ({time.perf_counter() - start:.0f} s in all)")
    _common.goal(ours >= theirs, "tftransfer >= AutoKeras at the same wall time")
    _common.report("peers", ours / max(theirs, 1e-9))


if __name__ == "__main__":
    main()
