"""The model stage's classifier: images -> hub backbone -> head -> probabilities.

`TransferClassifier` is a functional Keras model that owns its two parts, `backbone` (a
HubBackbone) and `head`, a Keras model of its own on feature vectors, so a head trained
on cached features is exactly the head later put back on the backbone. Every copy of a
classifier is made by `TransferClassifier.clone`. Compiling is in compile.py.
"""
from __future__ import annotations

import keras

from tftransfer.config.run_config import BackboneConfig, HeadConfig, RunConfig
from tftransfer.model.backbone import HubBackbone

# The Keras input's name. (The SavedModel's serving inputs are export/signatures.py's.)
IMAGES = "images"
# The head's last two layers: temperature scaling (model/temperature_layer.py) goes between them.
LOGITS, PROBABILITIES = "head_logits", "probabilities"
# A classifier's weights file holds the backbone's weights in this group of `layers`:
# Keras names the groups after the layers' classes, not after the layers.
BACKBONE_WEIGHTS = "hub_backbone"


def images_input(image_size: int) -> keras.KerasTensor:
    return keras.Input((image_size, image_size, 3), name=IMAGES)


def build_head(feature_width: int, num_classes: int, cfg: HeadConfig,
               multi_label: bool = False) -> keras.Model:
    """`multi_label`: a sigmoid per label (--labels_csv) instead of one softmax."""
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    features = keras.Input((feature_width,), name="features")
    x = features
    for i, units in enumerate(cfg.head_units):
        x = keras.layers.Dropout(cfg.dropout, name=f"head_dropout_{i}")(x)
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                               name=f"head_dense_{i}")(x)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout_out")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer,
                                name=LOGITS)(x)
    # Softmax in float32 keeps probabilities (and the loss) exact under mixed precision.
    probabilities = keras.layers.Activation("sigmoid" if multi_label else "softmax",
                                            dtype="float32",
                                            name=PROBABILITIES)(logits)
    return keras.Model(features, probabilities, name="head")


def build_backbone(cfg: BackboneConfig, image_size: int,
                   module=None) -> tuple[HubBackbone, int]:
    backbone = HubBackbone(cfg.hub_handle, cfg.block_pattern, cfg.bn_inference, module=module)
    feature_width = backbone.probe(image_size)
    backbone.set_fine_tune_depth(cfg.fine_tune_depth)  # fails early if the depth is too deep
    backbone.set_fine_tune_depth(0)
    return backbone, feature_width


@keras.saving.register_keras_serializable(package="tftransfer")
class TransferClassifier(keras.Model):
    """`head(backbone(images))` as a functional model keeping `backbone` and `head`.

    Its weights file is laid out as a plain functional model's, whichever subclass saved
    it: `layers/input_layer`, `layers/hub_backbone` (BACKBONE_WEIGHTS) and the head's
    `layers/functional`.
    """

    def __init__(self, backbone: HubBackbone, head: keras.Model, image_size: int,
                 name: str = "classifier", **kwargs):
        images = images_input(image_size)
        super().__init__(inputs=images, outputs=head(backbone(images)), name=name, **kwargs)
        self.backbone, self.head, self.image_size = backbone, head, image_size

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "backbone": self.backbone.get_config(),
                "head": keras.saving.serialize_keras_object(self.head)}

    @classmethod
    def from_config(cls, config):
        """A new classifier like the configured one, on a freshly loaded hub module."""
        config = dict(config)
        backbone = HubBackbone.from_config(config.pop("backbone"))
        head = keras.saving.deserialize_keras_object(config.pop("head"))
        return cls(backbone, head, **config)

    def clone(self, name: str | None = None, bn_inference: bool | None = None,
              share_backbone: bool = False) -> TransferClassifier:
        """A copy with this classifier's weights and fine-tune depth, made in its strategy
        scope, that training or quantizing leaves this one untouched. Its backbone adopts
        a freshly loaded hub module (this one's variables are those a live export holds),
        with BatchNorm in inference mode if `bn_inference`; with `share_backbone`, only
        the head is copied and the copy calls this classifier's backbone."""
        if share_backbone and bn_inference is not None:
            raise ValueError("a shared backbone keeps its own bn_inference")
        with self.distribute_strategy.scope():
            backbone = self.backbone if share_backbone else self._copied_backbone(bn_inference)
            head = keras.models.clone_model(self.head)
            head.set_weights(self.head.get_weights())
            return type(self)(backbone, head, **{**self._arguments(), "name": name or self.name})

    def _arguments(self) -> dict:
        """The constructor's arguments besides the backbone and the head."""
        return {key: value for key, value in self.get_config().items()
                if key not in ("backbone", "head")}

    def _copied_backbone(self, bn_inference: bool | None) -> HubBackbone:
        config = self.backbone.get_config()
        if bn_inference is not None:
            config["bn_inference"] = bn_inference
        backbone = HubBackbone.from_config(config)
        for copied, original in zip(backbone.adopted, self.backbone.adopted):
            copied.assign(original.numpy())
        backbone.set_fine_tune_depth(self.backbone.fine_tune_depth)
        return backbone


def build_model(cfg: RunConfig, num_classes: int, name: str = "classifier",
                multi_label: bool = False) -> TransferClassifier:
    """The classifier for `cfg`: a fresh head on the frozen backbone. `multi_label`: the
    data's labels are multi-hot (DataBundle.multi_label)."""
    backbone, feature_width = build_backbone(cfg.backbone, cfg.data.image_size)
    head = build_head(feature_width, num_classes, cfg.head, multi_label)
    return TransferClassifier(backbone, head, cfg.data.image_size, name=name)
