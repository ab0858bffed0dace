"""Temperature scaling folded into a classifier (--calibrate): the head's logits are
divided by a stored, non-trainable T before its softmax, so everything that calls the
model (evaluation, the SavedModel's signatures, TFLite conversion) gets the calibrated
probabilities. The fit of T is evaluate/temperature.py's."""
from __future__ import annotations

import keras

from tftransfer.model.classifier import LOGITS, PROBABILITIES, TransferClassifier

TEMPERATURE = "temperature"   # the layer's name in the head


@keras.saving.register_keras_serializable(package="tftransfer")
class Temperature(keras.layers.Layer):
    """logits / T, T a non-trainable scalar weight; computed in float32 whatever the
    precision policy, as the softmax after it is."""

    def __init__(self, temperature: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(trainable=False, **{k: v for k, v in kwargs.items()
                                             if k != "trainable"})
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.initial_temperature = float(temperature)

    def build(self, input_shape):
        self.temperature = self.add_weight(
            shape=(), name=TEMPERATURE, trainable=False,
            initializer=keras.initializers.Constant(self.initial_temperature))

    def call(self, logits):
        return logits / keras.ops.cast(self.temperature, logits.dtype)

    def get_config(self):
        value = float(self.temperature.numpy()) if self.built else self.initial_temperature
        return {**super().get_config(), "temperature": value}


def with_temperature(classifier: TransferClassifier, temperature: float) -> TransferClassifier:
    """A classifier sharing `classifier`'s backbone and head layers whose head divides its
    logits by `temperature` before the softmax. Its argmax is the original's."""
    head = classifier.head
    if any(isinstance(layer, Temperature) for layer in head.layers):
        raise ValueError("the classifier is already temperature-scaled")
    with classifier.distribute_strategy.scope():
        scaled = Temperature(temperature, name=TEMPERATURE)(head.get_layer(LOGITS).output)
        calibrated = keras.Model(head.input, head.get_layer(PROBABILITIES)(scaled),
                                 name=head.name)
        return TransferClassifier(classifier.backbone, calibrated, classifier.image_size,
                                  name=classifier.name)


def temperature_of(classifier: TransferClassifier) -> float:
    """The classifier's temperature; 1.0 when it has none."""
    for layer in classifier.head.layers:
        if isinstance(layer, Temperature):
            return float(layer.temperature.numpy())
    return 1.0
