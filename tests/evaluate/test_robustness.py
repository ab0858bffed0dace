import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.distribute import strategy as distribute
from tftransfer.evaluate import robustness, splits as evaluate
from tftransfer.model import attacks, classifier as model_lib
from tftransfer.train import training as train_lib


def _trained(tmp_path, hub, folder, strategy_name="auto", learning_rate=0.05, epochs=5):
    """A tiny-hub classifier trained to high accuracy on the colour classes."""
    cfg = make_config(tmp_path, dataset=folder, hub_handle=hub, fine_tune_depth=-1, epochs=epochs,
                      head_epochs=1, learning_rate=learning_rate, fine_tune_lr_factor=0.5,
                      dropout=0.0, label_smoothing=0.0, augment=False,
                      early_stopping_patience=0, strategy=strategy_name,
                      robustness_epsilons=[0.0, 0.05], robustness_pgd_steps=3)
    keras.utils.set_random_seed(0)
    strategy = distribute.make_strategy(strategy_name, cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    with strategy.scope():
        classifier = model_lib.build_model(cfg, data.num_classes)
    train_lib.train(classifier, classifier.backbone, data, cfg)
    return cfg, data, classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_hub_dir, color_folder):
    return _trained(tmp_path_factory.mktemp("run"), tiny_hub_dir, color_folder)


def _validation_batch(data):
    images, labels = zip(*data.validation.as_numpy_iterator())
    return tf.constant(np.concatenate(images)), tf.constant(np.concatenate(labels))


def _loss_and_accuracy(classifier, images, labels):
    probabilities = classifier(images, training=False)
    loss = float(tf.reduce_mean(attacks.true_class_nll(labels, probabilities)))
    hits = np.argmax(probabilities, axis=-1) == labels.numpy()
    return loss, float(hits.mean())


def test_attacks_raise_the_loss_and_lower_accuracy(trained):
    _, data, classifier = trained
    images, labels = _validation_batch(data)
    clean_loss, clean_accuracy = _loss_and_accuracy(classifier, images, labels)
    assert clean_accuracy > 0.9  # the fixture model really learned the classes
    epsilon = 0.15
    noise = tf.random.stateless_uniform(tf.shape(images), [0, 0], -1.0, 1.0)
    fgsm = attacks.fgsm(classifier, images, labels, epsilon)
    pgd = attacks.pgd(classifier, images, labels, epsilon, 5, noise)
    for attacked in (fgsm, pgd):
        assert float(tf.reduce_max(tf.abs(attacked - images))) <= epsilon + 1e-6
        assert float(tf.reduce_min(attacked)) >= 0.0 and float(tf.reduce_max(attacked)) <= 1.0
    fgsm_loss, fgsm_accuracy = _loss_and_accuracy(classifier, fgsm, labels)
    pgd_loss, pgd_accuracy = _loss_and_accuracy(classifier, pgd, labels)
    assert fgsm_loss > clean_loss + 0.5 and pgd_loss > clean_loss + 0.5
    assert pgd_loss >= fgsm_loss * 0.9  # iterating does not weaken the attack
    assert fgsm_accuracy < clean_accuracy - 0.3 and pgd_accuracy < clean_accuracy - 0.3


def test_zero_epsilon_leaves_images_unchanged(trained):
    _, data, classifier = trained
    images, labels = _validation_batch(data)
    noise = tf.random.stateless_uniform(tf.shape(images), [0, 1], -1.0, 1.0)
    np.testing.assert_array_equal(attacks.fgsm(classifier, images, labels, 0.0), images)
    np.testing.assert_array_equal(attacks.pgd(classifier, images, labels, 0.0, 3, noise),
                                  images)


@pytest.mark.parametrize("name", sorted(robustness.CORRUPTIONS))
def test_corruptions_grow_with_severity_and_stay_in_range(name):
    images = tf.random.stateless_uniform([4, 24, 24, 3], [1, 2], 0.2, 0.8)
    distances = []
    for severity in (1, 2, 3):
        corrupted = robustness.corrupt(images, name, severity, [3, 4])
        assert corrupted.shape == images.shape
        assert float(tf.reduce_min(corrupted)) >= 0 and float(tf.reduce_max(corrupted)) <= 1
        distances.append(float(tf.reduce_mean(tf.abs(corrupted - images))))
    assert 0 < distances[0] < distances[1] < distances[2]


def test_robustness_block_under_mirrored_strategy(tmp_path, tiny_hub_dir, color_folder):
    # Nothing below depends on accuracy: one head and one fine-tune epoch suffice.
    cfg, data, classifier = _trained(tmp_path, tiny_hub_dir, color_folder, "mirrored", 0.02,
                                     epochs=2)
    assert classifier.distribute_strategy.num_replicas_in_sync == 2
    result = robustness.evaluate_robustness(classifier, data, cfg)
    assert result["split"] == "test" and result["examples"] == data.sizes["test"]
    labels, probabilities = evaluate.predict_split(classifier, data.test)
    assert result["clean_accuracy"] == pytest.approx(
        float(np.mean(np.argmax(probabilities, -1) == labels)))
    epsilons = robustness.attack_epsilons(cfg)
    assert epsilons == [0.0, 0.01, 0.05]  # the configured ones and --adversarial_epsilon
    assert [(a["attack"], a["epsilon"]) for a in result["attacks"]] == [
        (attack, e) for attack in ("fgsm", "pgd") for e in epsilons]
    by_attack = {(a["attack"], a["epsilon"]): a["accuracy"] for a in result["attacks"]}
    assert by_attack[("fgsm", 0.0)] == by_attack[("pgd", 0.0)] == result["clean_accuracy"]
    assert result["robust_accuracy"] == by_attack[("pgd", 0.01)]
    assert len(result["corruptions"]) == 3 * len(robustness.CORRUPTIONS)
    assert all(0 <= c["accuracy"] <= 1 for c in result["corruptions"])
