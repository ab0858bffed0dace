import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.config.run_config import HeadConfig
from tftransfer.distribute.strategy import make_strategy
from tftransfer.model import classifier as model_lib
from tftransfer.train import adversarial

IMAGES = np.random.default_rng(0).random((4, 24, 24, 3), dtype=np.float32)


def _classifier(tmp_path, tiny_hub_dir, **values) -> model_lib.TransferClassifier:
    cfg = make_config(tmp_path, dataset="unused", hub_handle=tiny_hub_dir, **values)
    return model_lib.build_model(cfg, num_classes=3)


def _bump(variable) -> None:
    variable.assign(variable.numpy() + 1.0)


def _h5_layer_groups(path: str) -> set[str]:
    with h5py.File(path, "r") as f:
        return set(f["layers"])


def test_head_shapes_and_float32_probabilities_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        head = model_lib.build_head(16, 5, HeadConfig(head_units=(8, 4), dropout=0.1, l2=1e-4))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    out = head(np.ones((3, 16), np.float32))
    assert out.shape == (3, 5) and str(out.dtype) == "<dtype: 'float32'>"
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)
    assert [l.name for l in head.layers if isinstance(l, keras.layers.Dense)] == [
        "head_dense_0", "head_dense_1", "head_logits"]
    assert len(head.losses) == 3  # one L2 penalty per kernel


def test_a_multi_label_head_has_a_sigmoid_per_label():
    head = model_lib.build_head(16, 4, HeadConfig(dropout=0.0), multi_label=True)
    features = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    logits = keras.Model(head.input, head.get_layer(model_lib.LOGITS).output)(features)
    np.testing.assert_allclose(head(features), keras.activations.sigmoid(logits), rtol=1e-6)


def test_the_classifier_owns_its_backbone_and_head(tmp_path, tiny_hub_dir):
    classifier = _classifier(tmp_path, tiny_hub_dir)
    assert [layer.name for layer in classifier.layers] == [model_lib.IMAGES, "backbone", "head"]
    assert classifier.layers[1] is classifier.backbone
    assert classifier.layers[2] is classifier.head
    np.testing.assert_allclose(classifier(IMAGES), classifier.head(classifier.backbone(IMAGES)))


def test_config_round_trip_rebuilds_it_on_a_new_module(tmp_path, tiny_hub_dir):
    classifier = _classifier(tmp_path, tiny_hub_dir, head_units=[8], bn_inference=False)
    rebuilt = model_lib.TransferClassifier.from_config(classifier.get_config())
    assert rebuilt.get_config() == classifier.get_config()
    assert rebuilt.backbone.module is not classifier.backbone.module
    assert not rebuilt.backbone.bn_inference
    assert [l.name for l in rebuilt.head.layers] == [l.name for l in classifier.head.layers]
    rebuilt.set_weights(classifier.get_weights())
    np.testing.assert_allclose(rebuilt(IMAGES), classifier(IMAGES), rtol=1e-6)
    # Registered, so Keras' own serialization rebuilds it too.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(classifier))
    assert type(again) is model_lib.TransferClassifier and again.name == classifier.name


def test_clone_is_an_independent_copy_on_a_fresh_module(tmp_path, tiny_hub_dir):
    classifier = _classifier(tmp_path, tiny_hub_dir, fine_tune_depth=1, bn_inference=False)
    classifier.backbone.set_fine_tune_depth(1)
    copy = classifier.clone(name="copy", bn_inference=True)
    assert copy.name == "copy" and copy.backbone.bn_inference
    assert not classifier.backbone.bn_inference
    assert copy.backbone.module is not classifier.backbone.module
    assert copy.head is not classifier.head
    assert copy.backbone.fine_tune_depth == 1
    assert len(copy.trainable_weights) == len(classifier.trainable_weights)
    np.testing.assert_allclose(copy(IMAGES), classifier(IMAGES), rtol=1e-6)
    before = [w.copy() for w in classifier.get_weights()]
    _bump(copy.head.get_layer("head_logits").kernel)
    _bump(copy.backbone.module.variables[0])
    assert not np.allclose(copy(IMAGES), classifier(IMAGES))
    for kept, original in zip(classifier.get_weights(), before):
        np.testing.assert_array_equal(kept, original)


def test_clone_sharing_the_backbone_copies_the_head_only(tmp_path, tiny_hub_dir):
    classifier = _classifier(tmp_path, tiny_hub_dir)
    copy = classifier.clone(share_backbone=True)
    assert copy.backbone is classifier.backbone and copy.head is not classifier.head
    kernel = classifier.head.get_layer("head_logits").kernel.numpy()
    _bump(copy.head.get_layer("head_logits").kernel)
    np.testing.assert_array_equal(classifier.head.get_layer("head_logits").kernel, kernel)
    with pytest.raises(ValueError, match="bn_inference"):
        classifier.clone(share_backbone=True, bn_inference=True)


def test_clone_is_made_in_the_strategy_of_the_original(tmp_path, tiny_hub_dir):
    strategy = make_strategy("mirrored", global_batch_size=8)
    with strategy.scope():
        classifier = _classifier(tmp_path, tiny_hub_dir)
    copy = classifier.clone()  # outside the scope
    assert copy.distribute_strategy is strategy
    assert copy.distribute_strategy.num_replicas_in_sync == 2
    assert all(isinstance(v.value, tf.distribute.DistributedValues) for v in copy.weights)
    np.testing.assert_allclose(copy.predict(IMAGES, verbose=0),
                               classifier.predict(IMAGES, verbose=0), rtol=1e-6)


def test_clone_keeps_mixed_precision_and_float32_probabilities(tmp_path, tiny_hub_dir):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        classifier = _classifier(tmp_path, tiny_hub_dir)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copy = classifier.clone()
    for model in (classifier, copy):
        assert model.head.get_layer("head_logits").compute_dtype == "bfloat16"
        assert model.backbone.compute_dtype == "float32"
        assert str(model(IMAGES).dtype) == "<dtype: 'float32'>"
    np.testing.assert_allclose(copy(IMAGES), classifier(IMAGES), rtol=1e-6)


def test_weights_files_keep_the_plain_functional_layout(tmp_path, tiny_hub_dir):
    classifier = _classifier(tmp_path, tiny_hub_dir)
    whole, head = str(tmp_path / "whole.weights.h5"), str(tmp_path / "head.weights.h5")
    classifier.save_weights(whole)
    classifier.head.save_weights(head)
    assert _h5_layer_groups(whole) == {"input_layer", model_lib.BACKBONE_WEIGHTS, "functional"}
    assert model_lib.BACKBONE_WEIGHTS not in _h5_layer_groups(head)


def test_the_adversarial_classifier_shares_the_backbone_and_head(tmp_path, tiny_hub_dir):
    cfg = make_config(tmp_path, dataset="unused", hub_handle=tiny_hub_dir,
                      adversarial="pgd", pgd_steps=2)
    classifier = model_lib.build_model(cfg, num_classes=3)
    wrapped = adversarial.wrap(classifier, cfg.adversarial, seed=3)
    assert isinstance(wrapped, model_lib.TransferClassifier)
    assert wrapped.backbone is classifier.backbone and wrapped.head is classifier.head
    assert [id(w) for w in wrapped.weights] == [id(w) for w in classifier.weights]
    assert wrapped.get_config()["attack"] == "pgd" and wrapped.get_config()["seed"] == 3
    # Its checkpoints load into the plain classifier.
    _bump(classifier.head.get_layer("head_logits").kernel)
    path = str(tmp_path / "adversarial.weights.h5")
    wrapped.save_weights(path)
    plain = model_lib.build_model(cfg, num_classes=3)
    plain.load_weights(path)
    np.testing.assert_allclose(plain(IMAGES), wrapped(IMAGES), rtol=1e-6)
    # A clone of it is adversarial too, with its own parts.
    copy = wrapped.clone()
    assert type(copy) is adversarial.AdversarialClassifier and copy.attack == "pgd"
    assert copy.backbone is not classifier.backbone
