import functools
import http.server
import os
import tarfile
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.config.errors import BackboneError
from tftransfer.distribute.strategy import make_strategy
from tftransfer.model.backbone import HubBackbone


def _classifier(backbone, size=24, classes=3):
    images = keras.Input((size, size, 3))
    model = keras.Model(images, keras.layers.Dense(classes, activation="softmax")(backbone(images)))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


def _fit_once(model, size=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((16, size, size, 3), dtype=np.float32)
    model.fit(x, rng.integers(0, 3, 16), epochs=1, batch_size=8, verbose=0)


def _snapshot(backbone):
    return {v.name: v.numpy().copy() for v in backbone.module.variables}


def _changed(before, backbone):
    return {v.name for v in backbone.module.variables
            if not np.array_equal(before[v.name], v.numpy())}


def test_adopts_the_module_variables_without_copying(tiny_hub_dir):
    backbone = HubBackbone(tiny_hub_dir)
    assert [a.value is v for a, v in zip(backbone.adopted, backbone.module.variables)] == \
        [True] * len(backbone.module.variables)
    assert backbone.num_blocks == 3 and backbone.probe(24) == 16


def test_depth_zero_leaves_the_backbone_bit_identical(tiny_hub_dir):
    backbone = HubBackbone(tiny_hub_dir)
    model = _classifier(backbone)
    before = _snapshot(backbone)
    _fit_once(model)
    assert _changed(before, backbone) == set()
    assert backbone.trainable_weights == []


@pytest.mark.parametrize("depth, blocks", [(1, ["blocks_2", "head"]),
                                           (2, ["blocks_1", "blocks_2", "head"])])
def test_depth_n_trains_exactly_the_top_n_blocks(tiny_hub_dir, depth, blocks):
    backbone = HubBackbone(tiny_hub_dir)
    backbone.set_fine_tune_depth(depth)
    model = _classifier(backbone)
    before = _snapshot(backbone)
    _fit_once(model)
    expected = {v.name for v in backbone.module.trainable_variables
                if v.name.split("/")[0] in blocks}
    assert _changed(before, backbone) == expected


def test_all_depth_trains_everything_but_moving_statistics(tiny_hub_dir):
    backbone = HubBackbone(tiny_hub_dir)
    backbone.set_fine_tune_depth(-1)
    before = _snapshot(backbone)
    _fit_once(_classifier(backbone))
    assert _changed(before, backbone) == {v.name for v in backbone.module.trainable_variables}


def test_batchnorm_statistics_update_only_when_asked(tiny_hub_dir):
    backbone = HubBackbone(tiny_hub_dir, bn_inference=False)
    backbone.set_fine_tune_depth(1)
    before = _snapshot(backbone)
    _fit_once(_classifier(backbone))
    assert {"blocks_2/bn/moving_mean:0", "blocks_2/bn/moving_variance:0"} <= _changed(
        before, backbone)


def test_too_deep_is_a_clear_error(tiny_hub_dir):
    with pytest.raises(BackboneError, match="--fine_tune_depth: .*only 3 blocks"):
        HubBackbone(tiny_hub_dir).set_fine_tune_depth(4)


def test_weights_round_trip_through_keras_checkpoint(tiny_hub_dir, tmp_path):
    backbone = HubBackbone(tiny_hub_dir)
    backbone.set_fine_tune_depth(-1)
    model = _classifier(backbone)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    before = _snapshot(backbone)
    _fit_once(model)
    model.load_weights(path)
    assert _changed(before, backbone) == set()


def test_a_classifier_clones_through_its_config(tiny_hub_dir):
    backbone = HubBackbone(tiny_hub_dir, bn_inference=False)
    model = _classifier(backbone)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    (cloned,) = [layer for layer in clone.layers if isinstance(layer, HubBackbone)]
    assert cloned.handle == tiny_hub_dir and cloned.bn_inference is False
    assert cloned.module is not backbone.module            # loaded afresh from the handle
    images = np.random.default_rng(0).random((2, 24, 24, 3), dtype=np.float32)
    np.testing.assert_allclose(clone(images), model(images), atol=1e-6)


class _FeatureMaps(tf.__internal__.tracking.AutoTrackable):
    """A reusable SavedModel that returns feature maps, not a feature vector."""

    def __init__(self):
        self.scale = tf.Variable(2.0, name="stem/scale")
        self.variables = [self.scale]
        self.trainable_variables = [self.scale]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([], tf.bool)])
    def __call__(self, images, training=False):
        return images * self.scale


def test_a_module_that_is_not_a_feature_vector_is_refused(tmp_path):
    path = str(tmp_path / "maps")
    tf.saved_model.save(_FeatureMaps(), path)
    backbone = HubBackbone(path)
    with pytest.raises(BackboneError, match="not a feature vector"):
        backbone.probe(24)


def test_unloadable_handle_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="--hub_handle: cannot load"):
        HubBackbone(str(tmp_path))


def test_url_handle_downloads_a_compressed_module_into_the_hub_cache(tiny_hub_dir, tmp_path,
                                                                     monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "tiny.tar.gz", "w:gz") as tar:
        for name in os.listdir(tiny_hub_dir):
            tar.add(os.path.join(tiny_hub_dir, name), arcname=name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    try:
        backbone = HubBackbone(f"http://127.0.0.1:{server.server_port}/tiny.tar.gz")
    finally:
        server.shutdown()
    assert backbone.probe(24) == 16
    assert os.listdir(tmp_path / "cache")  # extracted into the cache, reusable offline


def test_trains_under_mirrored_strategy_with_two_replicas(tiny_hub_dir):
    strategy = make_strategy("mirrored", global_batch_size=8)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        backbone = HubBackbone(tiny_hub_dir)
        backbone.set_fine_tune_depth(1)
        model = _classifier(backbone)
    assert isinstance(backbone.module.variables[0], tf.distribute.DistributedValues)
    before = _snapshot(backbone)
    _fit_once(model)
    assert "blocks_2/conv/kernel:0" in _changed(before, backbone)
    replicas = backbone.module.variables[-1].values
    np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())


def test_reinitialize_draws_he_normal_kernels_and_identity_normalisation(tiny_hub_dir):
    backbone = HubBackbone(tiny_hub_dir, r"blocks_(\d+)")
    images = tf.random.stateless_uniform([2, 24, 24, 3], [1, 2])
    pretrained = backbone(images).numpy()
    backbone.reinitialize(seed=3)
    values = dict(zip(backbone.variable_names, backbone.adopted))
    kernel = values["blocks_1/conv/kernel:0"].numpy()  # fan-in 3 x 3 x 8
    assert abs(kernel.std() / np.sqrt(2 / 72) - 1) < 0.15
    assert np.all(values["blocks_1/bn/gamma:0"].numpy() == 1)
    assert np.all(values["blocks_1/bn/moving_mean:0"].numpy() == 0)
    assert not np.allclose(backbone(images).numpy(), pretrained)
    again = HubBackbone(tiny_hub_dir, r"blocks_(\d+)")
    again.reinitialize(seed=3)
    assert np.array_equal(again.adopted[1].numpy(), values["blocks_0/conv/kernel:0"].numpy())
