"""The model stage: backbone + head, loss, metrics, optimizer and learning-rate schedule.

The head is its own Keras model on feature vectors, so a head trained on cached features
is exactly the head later put back on the backbone.
"""
from __future__ import annotations

import keras
from keras import ops

from tftransfer.config.run_config import BackboneConfig, HeadConfig, RunConfig, TrainConfig
from tftransfer.model.backbone import HubBackbone


def build_head(feature_width: int, num_classes: int, cfg: HeadConfig) -> keras.Model:
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    features = keras.Input((feature_width,), name="features")
    x = features
    for i, units in enumerate(cfg.head_units):
        x = keras.layers.Dropout(cfg.dropout, name=f"head_dropout_{i}")(x)
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                               name=f"head_dense_{i}")(x)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout_out")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer,
                                name="head_logits")(x)
    # Softmax in float32 keeps probabilities (and the loss) exact under mixed precision.
    probabilities = keras.layers.Activation("softmax", dtype="float32",
                                            name="probabilities")(logits)
    return keras.Model(features, probabilities, name="head")


def build_backbone(cfg: BackboneConfig, image_size: int,
                   module=None) -> tuple[HubBackbone, int]:
    backbone = HubBackbone(cfg.hub_handle, cfg.block_pattern, cfg.bn_inference, module=module)
    feature_width = backbone.probe(image_size)
    backbone.set_fine_tune_depth(cfg.fine_tune_depth)  # fails early if the depth is too deep
    backbone.set_fine_tune_depth(0)
    return backbone, feature_width


def build_classifier(backbone: HubBackbone, head: keras.Model, image_size: int,
                     name: str = "classifier") -> keras.Model:
    images = keras.Input((image_size, image_size, 3), name="images")
    return keras.Model(images, head(backbone(images)), name=name)


def build_model(cfg: RunConfig, num_classes: int,
                name: str = "classifier") -> tuple[keras.Model, HubBackbone]:
    """The classifier for `cfg` (a fresh head on the frozen backbone) and its backbone."""
    backbone, feature_width = build_backbone(cfg.backbone, cfg.data.image_size)
    head = build_head(feature_width, num_classes, cfg.head)
    return build_classifier(backbone, head, cfg.data.image_size, name), backbone


class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Keras' sparse loss has none)."""

    def __init__(self, num_classes: int, label_smoothing: float, name="crossentropy"):
        super().__init__(name=name)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def call(self, y_true, y_pred):
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, [-1]), "int32"), self.num_classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {"num_classes": self.num_classes, "label_smoothing": self.label_smoothing,
                "name": self.name}


def metrics(num_classes: int) -> list[keras.metrics.Metric]:
    found = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes >= 5:
        found.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    return found


def learning_rate_schedule(peak: float, total_steps: int, warmup_steps: int):
    total_steps = max(total_steps, 1)
    warmup_steps = min(warmup_steps, total_steps - 1)
    if warmup_steps <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total_steps - warmup_steps, warmup_target=peak,
        warmup_steps=warmup_steps)


def make_optimizer(cfg: TrainConfig, learning_rate) -> keras.optimizers.Optimizer:
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return keras.optimizers.Adagrad(learning_rate)
    return keras.optimizers.Adam(learning_rate)


# A head on cached features takes less time per step than Keras spends calling the step,
# so a head alone runs this many steps per call (benchmarks/feature_cache.py).
HEAD_STEPS_PER_EXECUTION = 32


def compile_for_phase(model: keras.Model, cfg: TrainConfig, num_classes: int,
                      label_smoothing: float, peak_lr: float, steps: int, warmup_steps: int,
                      steps_per_execution: int = 1):
    schedule = learning_rate_schedule(peak_lr, steps, warmup_steps)
    model.compile(optimizer=make_optimizer(cfg, schedule),
                  loss=SmoothedSparseCrossentropy(num_classes, label_smoothing),
                  metrics=metrics(num_classes), jit_compile=cfg.jit_compile,
                  steps_per_execution=steps_per_execution)
