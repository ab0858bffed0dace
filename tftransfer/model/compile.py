"""How a classifier is compiled for a training phase: the loss, metrics, optimizer and
learning-rate schedule."""
from __future__ import annotations

import keras
from keras import ops

from tftransfer.config.run_config import TrainConfig


def is_soft(labels) -> bool:
    """Whether a batch's labels are one-hot soft labels [B, C] (mixup, cutmix) rather than
    integer labels [B] or [B, 1]; decided from the static shape, when Keras traces."""
    return len(labels.shape) == 2 and labels.shape[-1] not in (None, 1)


def as_class_indices(labels):
    """Integer labels from either form: a soft label's largest share."""
    if is_soft(labels):
        return ops.argmax(labels, axis=-1)
    return labels


class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy with label smoothing (Keras' sparse loss has none) on integer labels
    or on one-hot soft labels, which mixup and cutmix give the training batches."""

    def __init__(self, num_classes: int, label_smoothing: float, name="crossentropy"):
        super().__init__(name=name)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def call(self, y_true, y_pred):
        if is_soft(y_true):
            targets = ops.cast(y_true, y_pred.dtype)
        else:
            targets = ops.one_hot(ops.cast(ops.reshape(y_true, [-1]), "int32"),
                                  self.num_classes)
        return keras.losses.categorical_crossentropy(targets, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {"num_classes": self.num_classes, "label_smoothing": self.label_smoothing,
                "name": self.name}


# What the best checkpoint and early stopping follow: the mean per-label AUC for
# multi-label runs, whose accuracy would mostly count the easy negatives.
MONITORED, MULTI_LABEL_MONITORED = "val_accuracy", "val_auc"


def monitored(multi_label: bool) -> str:
    return MULTI_LABEL_MONITORED if multi_label else MONITORED


def multi_label_metrics() -> list[keras.metrics.Metric]:
    return [keras.metrics.AUC(multi_label=True, name="auc"),
            keras.metrics.BinaryAccuracy(name="binary_accuracy")]


def loss(num_classes: int, label_smoothing: float, multi_label: bool = False):
    if multi_label:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    return SmoothedSparseCrossentropy(num_classes, label_smoothing)


class _OnClassIndices:
    """Metric mixin: soft labels count as their largest share's class."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(as_class_indices(y_true), y_pred, sample_weight)


class Accuracy(_OnClassIndices, keras.metrics.SparseCategoricalAccuracy):
    """Keras's sparse accuracy on integer or soft labels."""


class TopKAccuracy(_OnClassIndices, keras.metrics.SparseTopKCategoricalAccuracy):
    """Keras's sparse top-k accuracy on integer or soft labels."""


def metrics(num_classes: int) -> list[keras.metrics.Metric]:
    found = [Accuracy(name="accuracy")]
    if num_classes >= 5:
        found.append(TopKAccuracy(k=5, name="top5_accuracy"))
    return found


def learning_rate_schedule(peak: float, total_steps: int, warmup_steps: int):
    total_steps = max(total_steps, 1)
    warmup_steps = min(warmup_steps, total_steps - 1)
    if warmup_steps <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total_steps - warmup_steps, warmup_target=peak,
        warmup_steps=warmup_steps)


# --ema without a momentum averages over about this share of a phase's steps (at least
# EMA_MIN_STEPS): a fixed 0.999 would, in a phase of a few hundred steps, still hold much
# of the weights it started from (Keras's average has no warm-up or bias correction).
EMA_WINDOW_SHARE = 0.1
EMA_MIN_STEPS = 10


def ema_momentum(cfg: TrainConfig, steps: int) -> float:
    """The average's momentum for a phase of `steps` optimizer steps."""
    if cfg.ema_momentum:
        return cfg.ema_momentum
    return 1.0 - 1.0 / max(EMA_WINDOW_SHARE * steps, EMA_MIN_STEPS)


class _RatePerVariable:
    """Optimizer mixin: each variable learns at the schedule's rate times its factor in
    `rate_factors` ({id of the Keras variable: factor}; 1 when absent). Keras 3 optimizers
    take one rate, and scaling gradients instead would not change Adam's steps."""

    rate_factors: dict[int, float] = {}

    def update_step(self, gradient, variable, learning_rate):
        keras_variable = self._trainable_variables[self._get_variable_index(variable)]
        factor = self.rate_factors.get(id(keras_variable), 1.0)
        if factor != 1.0:
            learning_rate = ops.multiply(learning_rate, factor)
        return super().update_step(gradient, variable, learning_rate)


def _with_rates(optimizer_class, rate_factors: dict[int, float] | None):
    if not rate_factors:
        return optimizer_class
    return type(optimizer_class.__name__, (_RatePerVariable, optimizer_class),
                {"rate_factors": rate_factors})


def make_optimizer(cfg: TrainConfig, learning_rate, steps: int = 1,
                   rate_factors: dict[int, float] | None = None) -> keras.optimizers.Optimizer:
    """`steps`: the phase's optimizer steps, which set --ema's automatic momentum;
    `rate_factors`: per-variable learning-rate factors (_RatePerVariable)."""
    ema = {"use_ema": True, "ema_momentum": ema_momentum(cfg, steps)} if cfg.ema else {}
    if cfg.optimizer == "sgd":
        return _with_rates(keras.optimizers.SGD, rate_factors)(
            learning_rate, momentum=cfg.momentum, nesterov=True, **ema)
    if cfg.optimizer == "adamw":
        return _with_rates(keras.optimizers.AdamW, rate_factors)(
            learning_rate, weight_decay=cfg.weight_decay, **ema)
    if cfg.optimizer == "adagrad":
        return _with_rates(keras.optimizers.Adagrad, rate_factors)(learning_rate, **ema)
    return _with_rates(keras.optimizers.Adam, rate_factors)(learning_rate, **ema)


# A head on cached features takes less time per step than Keras spends calling the step,
# so a head alone runs this many steps per call (benchmarks/feature_cache.py).
HEAD_STEPS_PER_EXECUTION = 32


def compile_for_phase(model: keras.Model, cfg: TrainConfig, num_classes: int,
                      label_smoothing: float, peak_lr: float, steps: int, warmup_steps: int,
                      steps_per_execution: int = 1,
                      rate_factors: dict[int, float] | None = None,
                      multi_label: bool = False):
    """`multi_label`: binary cross-entropy per label and multi_label_metrics()."""
    schedule = learning_rate_schedule(peak_lr, steps, warmup_steps)
    model.compile(optimizer=make_optimizer(cfg, schedule, steps, rate_factors),
                  loss=loss(num_classes, label_smoothing, multi_label),
                  metrics=multi_label_metrics() if multi_label else metrics(num_classes),
                  jit_compile=cfg.jit_compile,
                  steps_per_execution=steps_per_execution)
