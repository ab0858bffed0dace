"""The learning-rate range test (`python -m tftransfer.lr_find`, `--learning_rate=find`):
the run's own model, backbone frozen, trains on the run's own training batches while its
learning rate grows geometrically, one step per rate, until the loss diverges. The
suggested rate is where the smoothed loss falls fastest, before its minimum (Smith 2017,
"Cyclical Learning Rates"; fastai's lr_find). It is phase 1's peak rate (the head's); the
fine-tune phase multiplies it by --fine_tune_lr_factor as usual.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from absl import logging

from tftransfer.config.run_config import RunConfig
from tftransfer.model import compile as compile_lib

MIN_RATE, MAX_RATE = 1e-7, 10.0
STEPS = 100
SMOOTHING = 0.9          # of the loss's exponential moving average, bias-corrected
DIVERGED = 4.0           # stop once the smoothed loss is this many times its minimum


@dataclasses.dataclass(frozen=True)
class RangeTest:
    rates: tuple[float, ...]
    losses: tuple[float, ...]         # smoothed, one per rate tried
    suggestion: float

    def to_dict(self) -> dict:
        return {"suggested_learning_rate": self.suggestion,
                "rates": [float(f"{r:.4g}") for r in self.rates],
                "losses": [round(v, 5) for v in self.losses]}


def rates(steps: int = STEPS, low: float = MIN_RATE, high: float = MAX_RATE) -> np.ndarray:
    return np.geomspace(low, high, steps)


def smooth(losses, factor: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average (as Adam corrects its moments)."""
    average, smoothed = 0.0, []
    for step, loss in enumerate(losses, start=1):
        average = factor * average + (1 - factor) * loss
        smoothed.append(average / (1 - factor ** step))
    return smoothed


def suggest(tried_rates, smoothed_losses) -> float:
    """The rate where the smoothed loss falls fastest per decade of rate, up to the loss's
    minimum; with fewer than 3 points before it, a tenth of the minimum's rate."""
    losses = np.asarray(smoothed_losses, float)
    logs = np.log10(np.asarray(tried_rates, float))
    lowest = int(np.argmin(losses))
    if lowest < 2:
        return float(tried_rates[lowest]) / 10
    slopes = np.gradient(losses[:lowest + 1], logs[:lowest + 1])
    return float(tried_rates[int(np.argmin(slopes))])


class _GrowingRate(keras.callbacks.Callback):
    """One rate per one-step epoch (an epoch's logged loss is then that step's), stopping
    when the smoothed loss diverges."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule, self.tried, self.raw = schedule, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = float(self.schedule[epoch])

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.tried.append(float(self.schedule[epoch]))
        self.raw.append(loss)
        smoothed = smooth(self.raw)
        if not math.isfinite(loss) or smoothed[-1] > DIVERGED * min(smoothed):
            self.model.stop_training = True


def run_range_test(classifier: keras.Model, backbone, train_data, num_classes: int,
                   cfg: RunConfig, steps: int = STEPS) -> RangeTest:
    """The range test on `classifier` (a TransferClassifier with its `backbone` frozen for
    it); its weights are put back afterwards."""
    saved = [v.numpy() for v in classifier.weights]
    backbone.set_fine_tune_depth(0)
    with classifier.distribute_strategy.scope():
        # A constant rate, which the callback sets step by step (a schedule could not be).
        classifier.compile(
            optimizer=compile_lib.make_optimizer(dataclasses.replace(cfg.train, ema=False),
                                                 MIN_RATE),
            loss=compile_lib.SmoothedSparseCrossentropy(num_classes,
                                                        cfg.head.label_smoothing))
    schedule = rates(steps)
    growing = _GrowingRate(schedule)
    classifier.fit(train_data.repeat(), steps_per_epoch=1, epochs=steps, verbose=0,
                   callbacks=[keras.callbacks.TerminateOnNaN(), growing])
    for variable, value in zip(classifier.weights, saved):
        variable.assign(value)
    # The diverging tail would dwarf the rest: kept up to the first divergence.
    smoothed = smooth([v if math.isfinite(v) else math.inf for v in growing.raw])
    kept = len([s for s in smoothed if math.isfinite(s)])
    tried, smoothed = growing.tried[:kept], smoothed[:kept]
    if len(tried) < 3:
        raise ValueError("the loss diverged within the first steps of the range test")
    found = RangeTest(tuple(tried), tuple(smoothed), suggest(tried, smoothed))
    logging.info("Learning-rate range test: %d rates from %.1e to %.1e; suggested %.2e",
                 len(tried), tried[0], tried[-1], found.suggestion)
    return found
