import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.config.run_config import TrainConfig
from tftransfer.model import compile as compile_lib


def test_label_smoothing_matches_the_formula():
    probs = np.array([[0.7, 0.2, 0.1]], np.float32)
    loss = compile_lib.SmoothedSparseCrossentropy(3, 0.3)(np.array([0]), probs)
    target = np.array([0.7 + 0.1, 0.1, 0.1])
    np.testing.assert_allclose(float(loss), -(target * np.log(probs[0])).sum(), rtol=1e-5)


def test_cosine_schedule_warms_up_then_decays():
    schedule = compile_lib.learning_rate_schedule(0.1, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0) and values[1] == pytest.approx(0.05)
    assert values[2] == pytest.approx(0.1) and values[3] == pytest.approx(0.05, rel=1e-3)
    assert values[4] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name, cls", [("sgd", keras.optimizers.SGD),
                                       ("adam", keras.optimizers.Adam),
                                       ("adamw", keras.optimizers.AdamW),
                                       ("adagrad", keras.optimizers.Adagrad)])
def test_optimizers(name, cls):
    optimizer = compile_lib.make_optimizer(TrainConfig(optimizer=name), 0.01)
    assert isinstance(optimizer, cls)


@pytest.mark.parametrize("num_classes, names", [(3, ["accuracy"]),
                                                (5, ["accuracy", "top5_accuracy"])])
def test_top5_accuracy_only_with_five_classes_or_more(num_classes, names):
    assert [m.name for m in compile_lib.metrics(num_classes)] == names


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad"])
def test_ema_averages_over_a_tenth_of_the_phase_unless_told(name):
    optimizer = compile_lib.make_optimizer(TrainConfig(optimizer=name, ema=True), 0.01, 5000)
    assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(1 - 1 / 500)
    short = compile_lib.ema_momentum(TrainConfig(ema=True), 30)   # at least 10 steps
    assert short == pytest.approx(0.9)
    assert compile_lib.ema_momentum(TrainConfig(ema=True, ema_momentum=0.99), 5000) == 0.99
    assert not compile_lib.make_optimizer(TrainConfig(optimizer=name), 0.01, 5000).use_ema


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_each_variable_steps_at_the_rate_times_its_factor(name, replicas):
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if replicas == 2
                else tf.distribute.get_strategy())
    with strategy.scope():
        top, below, head = (keras.Variable(np.ones(3, np.float32)) for _ in range(3))
        optimizer = compile_lib.make_optimizer(
            TrainConfig(optimizer=name, weight_decay=0.0), 0.01,
            rate_factors={id(top): 1.0, id(below): 0.25})
    gradient = tf.constant([0.5, -1.0, 2.0])

    def step():
        optimizer.apply_gradients([(gradient, v) for v in (top, below, head)])
    strategy.run(tf.function(step))
    moved = [np.ones(3) - v.numpy() for v in (top, below, head)]
    np.testing.assert_allclose(moved[1], 0.25 * moved[0], rtol=1e-4)
    np.testing.assert_allclose(moved[2], moved[0], rtol=1e-4)
    assert type(optimizer).__name__ == type(compile_lib.make_optimizer(
        TrainConfig(optimizer=name), 0.01)).__name__


def test_multi_label_compiles_binary_crossentropy_and_monitors_auc():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    compile_lib.compile_for_phase(model, TrainConfig(), 3, 0.0, 1e-2, 10, 0,
                                  multi_label=True)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    y = (x[:, :3] > 0.5).astype("float32")
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert {"loss", "auc", "binary_accuracy"} <= set(logs)
    expected = keras.losses.binary_crossentropy(y, model.predict(x, verbose=0)).numpy().mean()
    assert logs["loss"] == pytest.approx(float(expected), rel=1e-4)
    assert compile_lib.monitored(True) == "val_auc"
    assert compile_lib.monitored(False) == "val_accuracy"


def test_soft_labels_take_the_same_smoothed_loss_as_their_one_hot_integers():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    loss = compile_lib.SmoothedSparseCrossentropy(3, 0.3)
    one_hot = np.eye(3, dtype=np.float32)[[0, 2]]
    np.testing.assert_allclose(float(loss(one_hot, probs)), float(loss(np.array([0, 2]), probs)),
                               rtol=1e-6)
    mixed = np.array([[0.6, 0.4, 0.0]], np.float32)
    target = mixed[0] * 0.7 + 0.1   # smoothing spreads 0.3 over the 3 classes
    np.testing.assert_allclose(float(loss(mixed, probs[:1])),
                               -(target * np.log(probs[0])).sum(), rtol=1e-5)


def test_accuracy_counts_a_soft_label_as_its_largest_share():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    for labels in (np.array([0, 1]), np.array([[0.8, 0.2, 0.0], [0.0, 0.6, 0.4]], np.float32)):
        accuracy = compile_lib.metrics(3)[0]
        accuracy.update_state(labels, probs)
        assert float(accuracy.result()) == 0.5
