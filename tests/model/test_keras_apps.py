"""keras:NAME backbones: a Keras application (random weights or a local weights file: no
download) adopted like a hub module, fine-tuned over its own blocks."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.config import catalogue
from tftransfer.config.errors import BackboneError
from tftransfer.model import backbone as backbone_lib, blocks as blocks_lib, keras_apps

APP = "MobileNetV3Small"   # the smallest application with blocks


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    """A MobileNetV3Small's random weights, saved as Keras saves an application's."""
    keras.utils.set_random_seed(3)
    model = keras.applications.MobileNetV3Small(include_top=False, pooling="avg", weights=None,
                                                input_shape=(None, None, 3))
    path = str(tmp_path_factory.mktemp("keras_app") / "small.weights.h5")
    model.save_weights(path)
    return path


def _backbone(handle: str = f"keras:{APP}", module=None,
              bn_inference: bool = True) -> backbone_lib.HubBackbone:
    return backbone_lib.HubBackbone(handle, catalogue.KERAS_BLOCKS, bn_inference, module=module)


def test_the_module_looks_like_a_hub_feature_vector():
    module = keras_apps.KerasAppModule(APP, weights="")
    assert all(isinstance(v, tf.Variable) for v in module.variables)
    assert len(module.variables) == len(module.variable_paths) > len(
        module.trainable_variables)
    features = module(tf.zeros([2, 32, 32, 3]), training=False)
    assert features.shape == (2, 576)


def test_its_blocks_come_from_the_layer_names():
    backbone = _backbone(module=keras_apps.KerasAppModule(APP, weights=""))
    names = [b.name for b in backbone.blocks]
    assert names[0] == blocks_lib.STEM
    assert names[1:] == ["expanded_conv"] + [f"expanded_conv_{i}" for i in range(1, 11)]
    assert backbone.probe(32) == 576
    assert [a.value is v for a, v in zip(backbone.adopted, backbone.module.variables)] == \
        [True] * len(backbone.adopted)  # adopted, not copied


def test_fine_tuning_depth_2_trains_exactly_the_top_two_blocks():
    # BatchNorm in training mode: random weights under inference-mode BatchNorm shrink the
    # activations until the gradients underflow.
    backbone = _backbone(module=keras_apps.KerasAppModule(APP, weights=""),
                         bn_inference=False)
    backbone.set_fine_tune_depth(2)
    images = keras.Input((32, 32, 3))
    model = keras.Model(images, keras.layers.Dense(3, activation="softmax")(backbone(images)))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    before = [v.numpy().copy() for v in backbone.module.variables]
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 32, 32, 3), dtype=np.float32), rng.integers(0, 3, 8),
              epochs=1, batch_size=8, verbose=0)
    changed = {backbone.variable_names[i] for i, v in enumerate(backbone.module.variables)
               if not np.array_equal(before[i], v.numpy())}
    top = {backbone.variable_names[i] for b in backbone.blocks[-2:] for i in b.indices}
    trainable = {backbone.variable_names[i] for i in range(len(backbone.adopted))
                 if backbone._can_train[i]}
    assert changed & trainable == top & trainable
    assert top & trainable and all(
        name.startswith(("expanded_conv_9", "expanded_conv_10", "conv_1"))
        for name in top & trainable)


def test_a_weights_file_is_loaded_through_the_handle(weights_file):
    module = backbone_lib.load_module(f"keras:{APP}@{weights_file}")
    saved = keras.applications.MobileNetV3Small(include_top=False, pooling="avg",
                                                weights=None, input_shape=(None, None, 3))
    saved.load_weights(weights_file)
    for loaded, expected in zip(module.variables, saved.weights):
        np.testing.assert_array_equal(loaded.numpy(), expected.numpy())


def test_an_unknown_application_is_one_line():
    with pytest.raises(BackboneError, match=r"^--backbone: keras.applications has no "
                                            r"'MobileNetV9'; choose from .*MobileNetV3Small"):
        backbone_lib.load_module("keras:MobileNetV9")


def test_a_bad_weights_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(BackboneError, match="^--backbone: cannot build keras:MobileNetV3Small"):
        backbone_lib.load_module(f"keras:{APP}@{bad}")


@pytest.mark.e2e
def test_a_run_on_a_keras_application_trains_and_exports(tmp_path, color_folder, weights_file):
    from conftest import check_a_run_trains_and_serves

    check_a_run_trains_and_serves(tmp_path, color_folder, f"keras:{APP}@{weights_file}")
