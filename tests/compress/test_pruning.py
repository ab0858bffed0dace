import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.compress import pruning
from tftransfer.data import pipeline as data_lib
from tftransfer.distribute import strategy as distribute
from tftransfer.export.signatures import PIXELS
from tftransfer.model import classifier as model_lib

TARGET = 0.6


def test_polynomial_schedule_matches_tfmot():
    # TFMOT: target + (initial - target) * (1 - progress) ** 3
    assert pruning.polynomial_sparsity(0, 0.8, end_step=100) == 0.0
    assert pruning.polynomial_sparsity(25, 0.8, end_step=100) == pytest.approx(0.4625)
    assert pruning.polynomial_sparsity(50, 0.8, end_step=100) == pytest.approx(0.7)
    assert pruning.polynomial_sparsity(100, 0.8, end_step=100) == pytest.approx(0.8)
    assert pruning.polynomial_sparsity(150, 0.8, end_step=100) == pytest.approx(0.8)
    assert pruning.polynomial_sparsity(10, 0.8, end_step=100, begin_step=20) == 0.0
    assert pruning.polynomial_sparsity(60, 0.8, end_step=100, begin_step=20,
                                       initial=0.2) == pytest.approx(0.725)


def test_magnitude_mask_zeroes_exactly_the_smallest():
    values = np.array([[0.5, -0.1, 0.3], [-0.9, 0.05, 0.2]], dtype=np.float32)
    assert pruning.magnitude_mask(values, 0.5).tolist() == [[1, 0, 1], [1, 0, 0]]
    assert pruning.magnitude_mask(values, 0.0).min() == 1.0
    assert pruning.sparsity([values * pruning.magnitude_mask(values, 0.34)]) == 2 / 6


def test_callback_follows_the_schedule_step_by_step():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(40),
                              keras.layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(80, 8)).astype("float32")
    y = np.arange(80) % 3
    callback = pruning.MagnitudePruning(TARGET, end_step=9)  # 10 steps of 8
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(
        [float(np.mean(w.numpy() == 0)) for w in callback.weights]))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback, record])
    assert len(callback.weights) == 2  # the kernels, not the biases
    for step, per_kernel in enumerate(seen):
        expected = pruning.polynomial_sparsity(step, TARGET, end_step=9)
        # Masks are recomputed every step here (end_step // 20 < 1) and applied after the
        # optimizer's update, so each kernel is at the schedule's value after each batch.
        assert per_kernel == pytest.approx([round(expected * 320) / 320,
                                            round(expected * 120) / 120]), step
    assert seen[-1] == pytest.approx([TARGET, TARGET])


def test_masks_are_refreshed_every_frequency_steps_and_kept_between():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(50)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    callback = pruning.MagnitudePruning(0.5, end_step=79)  # 80 steps: a refresh every 3
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(
        float(np.mean(callback.weights[0].numpy() == 0))))
    x = np.random.default_rng(0).normal(size=(80, 4)).astype("float32")
    model.fit(x, np.ones((80, 50)), batch_size=1, epochs=1, verbose=0,
              callbacks=[callback, record])
    assert callback.frequency == 3
    refreshed = [0, 3, 6, 9]
    for step in range(12):
        level = pruning.polynomial_sparsity(max(s for s in refreshed if s <= step), 0.5, 79)
        assert seen[step] == round(level * 200) / 200, step
    assert seen[-1] == 0.5 and sorted(seen) == seen


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, tiny_hub_dir, color_folder):
    """Prunes the top block + head of a classifier built under 2-replica MirroredStrategy."""
    out = tmp_path_factory.mktemp("pruning")
    cfg = make_config(out, dataset=color_folder, hub_handle=tiny_hub_dir, strategy="mirrored",
                      fine_tune_depth=1, bn_inference=False, prune_sparsity=TARGET,
                      prune_epochs=2, fine_tune_lr_factor=0.5)
    strategy = distribute.make_strategy(cfg.strategy, cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    with strategy.scope():
        classifier = model_lib.build_model(cfg, data.num_classes)
    before = [w.numpy() for w in classifier.weights]
    return cfg, data, classifier, before, pruning.prune_and_export(
        classifier, data, cfg)


def test_prunes_the_fine_tuned_kernels_in_a_short_fine_tune(pruned):
    cfg, _, _, _, result = pruned
    summary = result.summary
    assert summary["pruned_kernels"] == ["blocks_2_conv_kernel", "head_dense_kernel",
                                         "head_logits/kernel"]
    assert summary["sparsity"] == pytest.approx(TARGET, abs=0.01)
    assert summary["epochs"] == 2 and summary["fine_tune_depth"] == 1
    assert summary["learning_rate"] == pytest.approx(cfg.train.learning_rate * 0.5)
    assert result.export_dir == os.path.join(cfg.output_dir, "pruned_saved_model", "1")
    # Moving BatchNorm statistics could not follow the pruning in a short fine-tune.
    assert result.classifier.backbone.bn_inference


def test_exported_weights_are_at_the_target_sparsity(pruned):
    _, _, _, _, result = pruned
    loaded = tf.saved_model.load(result.export_dir)
    exported = {v.name: v.numpy() for v in loaded.hub_module.variables}
    for name in ("blocks_2/conv/kernel:0", "head/dense/kernel:0"):
        assert pruning.sparsity([exported[name]]) == pytest.approx(TARGET, abs=0.01), name
    for name in ("stem/conv/kernel:0", "blocks_0/conv/kernel:0"):  # not fine-tuned
        assert pruning.sparsity([exported[name]]) == 0.0, name
    # The head's kernel, found among the checkpoint's tensors by its pruned values.
    reader = tf.train.load_checkpoint(os.path.join(result.export_dir, "variables", "variables"))
    logits = result.classifier.head.get_layer("head_logits").kernel.numpy()
    matches = [reader.get_tensor(key) for key, shape in reader.get_variable_to_shape_map().items()
               if shape == list(logits.shape)
               and np.array_equal(reader.get_tensor(key), logits)]
    assert matches and pruning.sparsity(matches[:1]) == pytest.approx(TARGET, abs=0.01)
    pixels = tf.zeros([2, 24, 24, 3], tf.uint8)
    probabilities = loaded.signatures[PIXELS.name](pixels=pixels)["probabilities"]
    np.testing.assert_allclose(tf.reduce_sum(probabilities, -1), [1, 1], rtol=1e-5)


def test_the_original_classifier_is_untouched(pruned):
    _, _, classifier, before, result = pruned
    for value, weight in zip(before, classifier.weights):
        np.testing.assert_array_equal(value, weight.numpy())
    assert result.classifier is not classifier
    original_module = classifier.backbone.module
    assert pruning.sparsity([v.numpy() for v in original_module.variables
                             if v.name == "blocks_2/conv/kernel:0"]) == 0.0
