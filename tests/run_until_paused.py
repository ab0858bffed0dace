"""`python run_until_paused.py POINT N MARKER [run flags...]`: `python -m tftransfer.run`
that stops for good at a chosen moment, after writing MARKER, so a test can kill it there.

POINT is one of:
- `trial`: when the N-th search trial of this process starts training;
- `epoch`: when (0-based) epoch N of a fit() begins, i.e. after epoch N-1 was backed up;
- `export`: once a SavedModel has been written, before it is moved into place.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo


def _pause(marker: str) -> None:
    with open(marker, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(60)


def _pause_at_trial(n: int, marker: str) -> None:
    from tftransfer.search import tuning as search
    fit, calls = search.TransferHyperModel.fit, []

    def paused_fit(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            _pause(marker)
        return fit(self, *args, **kwargs)
    search.TransferHyperModel.fit = paused_fit


def _pause_at_epoch(n: int, marker: str) -> None:
    import keras

    class Pause(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == n:
                _pause(marker)

    fit = keras.Model.fit

    def paused_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[*(callbacks or []), Pause()], **kwargs)
    keras.Model.fit = paused_fit


def _pause_after_saving(marker: str) -> None:
    import tensorflow as tf
    save = tf.saved_model.save

    def paused_save(*args, **kwargs):
        save(*args, **kwargs)
        _pause(marker)
    tf.saved_model.save = paused_save


def main() -> None:
    point, n, marker, *flags = sys.argv[1:]
    if point == "trial":
        _pause_at_trial(int(n), marker)
    elif point == "epoch":
        _pause_at_epoch(int(n), marker)
    elif point == "export":
        _pause_after_saving(marker)
    else:
        raise SystemExit(f"unknown pause point {point!r}")
    from tftransfer.cli import run
    sys.argv = ["tftransfer.run", *flags]
    run.entry_point()


if __name__ == "__main__":
    main()
