import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config
from PIL import Image

from tftransfer.config.run_config import ConfigError
from tftransfer.data import pipeline as data_lib
from tftransfer.distribute import strategy as distribute
from tftransfer.evaluate import splits as evaluate
from tftransfer.model import attacks, classifier as model_lib, compile as compile_lib
from tftransfer.search import space as search_space, tuning as search
from tftransfer.train import adversarial, training as train_lib
from tftransfer.variants import adversarial as adversarial_variant


def _classifier(cfg, num_classes, strategy):
    with strategy.scope():
        return model_lib.build_model(cfg, num_classes)


def test_mixed_batch_perturbs_the_chosen_share_within_epsilon(tmp_path, tiny_hub_dir,
                                                              color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      adversarial="pgd", adversarial_epsilon=0.05, adversarial_mix=0.25,
                      pgd_steps=2)
    classifier = _classifier(cfg, 3, tf.distribute.get_strategy())
    model = adversarial.wrap(classifier, cfg.adversarial, cfg.seed)
    compile_lib.compile_for_phase(model, cfg.train, 3, 0.0, 1e-3, 1, 0)
    images = tf.random.stateless_uniform([8, 24, 24, 3], [0, 1])
    mixed = model.mixed_batch(images, tf.constant([0, 1, 2, 0, 1, 2, 0, 1]))
    change = tf.reduce_max(tf.abs(mixed - images), axis=[1, 2, 3]).numpy()
    assert np.all(change[:2] > 0) and np.all(change[:2] <= 0.05 + 1e-6)
    assert np.all(change[2:] == 0)  # round(0.25 * 8) = 2 adversarial examples
    assert model.backbone is classifier.backbone and model.head is classifier.head


def test_fine_tune_under_mirrored_strategy_keeps_the_original(tmp_path, tiny_hub_dir,
                                                              color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      strategy="mirrored", fine_tune_depth=1, epochs=1, head_epochs=1,
                      adversarial="pgd", pgd_steps=2, adversarial_epochs=1)
    strategy = distribute.make_strategy(cfg.strategy, cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    classifier = _classifier(cfg, data.num_classes, strategy)
    train_lib.train(classifier, classifier.backbone, data, cfg)
    before = [w.copy() for w in classifier.get_weights()]
    tuned = adversarial_variant.fine_tune(classifier, data, cfg)
    assert tuned.classifier.distribute_strategy.num_replicas_in_sync == 2
    assert [p.name for p in tuned.training.phases] == ["fine_tune"]  # depth 1, lower rate
    for kept, original in zip(classifier.get_weights(), before):
        np.testing.assert_array_equal(kept, original)
    changed = [not np.array_equal(a, b)
               for a, b in zip(tuned.classifier.get_weights(), before)]
    assert any(changed)
    # Its checkpoint is a plain classifier's: the wrapper has the same layers.
    checkpoint = os.path.join(cfg.output_dir, "adversarial", "checkpoints", "best.weights.h5")
    plain = _classifier(cfg, data.num_classes, strategy)
    plain.load_weights(checkpoint)
    np.testing.assert_allclose(evaluate.predict_split(plain, data.validation)[1],
                               evaluate.predict_split(tuned.classifier, data.validation)[1],
                               rtol=1e-5, atol=1e-6)


def write_faint_cue_folder(root, per_class: int = 100, size: int = 24, seed: int = 0) -> str:
    """Two classes with a robust but noisy cue (the red level, overlapping for ~10% of the
    images) and a faint, perfectly reliable one (blue shifted by ±0.03). Plain training
    leans on the faint cue; an attack with ε > 0.03 reverses it, so only a model that
    learned to rely on red stays accurate under attack."""
    rng = np.random.default_rng(seed)
    for label, sign in ((0, 1.0), (1, -1.0)):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            color = [0.5 + sign * 0.15 + rng.normal(0, 0.12), rng.uniform(0.3, 0.7),
                     0.5 + sign * 0.03]
            pixels = np.clip(color + rng.normal(0, 0.03, (size, size, 3)), 0, 1)
            Image.fromarray((pixels * 255).round().astype("uint8")).save(
                os.path.join(folder, f"{i}.png"))
    return str(root)


def _colour_model(data) -> model_lib.TransferClassifier:
    """Logistic regression on the standardised mean colour: the cues the fixture plants,
    on one scale, so plain training can find the faint one. The standardised mean colour
    stands in for the backbone's features."""
    images = keras.Input((24, 24, 3))
    means = keras.layers.GlobalAveragePooling2D()(images)
    normalize = keras.layers.Normalization()
    normalize.adapt(data.train_unbatched.batch(64).map(
        lambda x, _: tf.reduce_mean(tf.cast(x, tf.float32) / 255.0, [1, 2])))
    backbone = keras.Model(images, normalize(means), name="backbone")
    features = keras.Input((3,))
    head = keras.Model(features, keras.layers.Dense(2, activation="softmax")(features),
                       name="head")
    return model_lib.TransferClassifier(backbone, head, 24)


def _pgd_accuracy(model, dataset, epsilon: float) -> float:
    hits = []
    for images, labels in dataset:
        attacked = attacks.pgd(model, images, labels, epsilon, 10)
        hits.append(np.argmax(model(attacked), -1) == labels.numpy())
    return float(np.concatenate(hits).mean())


def test_adversarial_fine_tuning_raises_robust_accuracy(tmp_path, tiny_hub_dir):
    folder = write_faint_cue_folder(tmp_path / "faint")
    epsilon, gains = 0.05, []
    for seed in (0, 1, 2):
        cfg = make_config(tmp_path / f"run{seed}", dataset=folder, hub_handle=tiny_hub_dir,
                          seed=seed, test_fraction=0.3, augment=False, epochs=10,
                          head_epochs=10, learning_rate=0.05, fine_tune_lr_factor=1.0,
                          label_smoothing=0.0, early_stopping_patience=0,
                          adversarial="fgsm", adversarial_epsilon=epsilon,
                          adversarial_mix=0.5, adversarial_epochs=8)
        keras.utils.set_random_seed(seed)
        data = data_lib.load_data(cfg.data, cfg.seed, "")
        base = _colour_model(data)
        train_lib.train(base, None, data, cfg)
        tune_cfg = adversarial_variant.fine_tune_config(cfg)
        robust = {}
        for kind in ("plain", "adversarial"):  # the same start, epochs and learning rate
            model = _colour_model(data)
            model.set_weights(base.get_weights())
            trained = (adversarial.wrap(model, cfg.adversarial, seed) if kind == "adversarial"
                       else model)
            train_lib.train(trained, None, data, dataclasses.replace(
                tune_cfg, output_dir=os.path.join(tune_cfg.output_dir, kind)))
            labels, probabilities = evaluate.predict_split(model, data.test)
            assert np.mean(probabilities.argmax(-1) == labels) > 0.8  # still accurate
            robust[kind] = _pgd_accuracy(model, data.test, epsilon)
        gains.append(robust["adversarial"] - robust["plain"])
    assert min(gains) > 0.1 and np.mean(gains) > 0.25, gains


def test_adversarial_is_a_search_dimension(tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    wrapped = []
    original = adversarial.wrap
    monkeypatch.setattr(adversarial, "wrap",
                        lambda *a, **k: wrapped.append(1) or original(*a, **k))
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"adversarial": ["fgsm"], "adversarial_epsilon": 0.02,
                                 "fine_tune_depth": [0], "augment": [False]}))
    cfg = make_config(tmp_path / "run", dataset=color_folder, hub_handle=tiny_hub_dir,
                      search="random", max_trials=1, search_epochs=1, search_space=str(space))
    strategy = distribute.make_strategy("mirrored", cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    result = search.run_search(cfg, data, strategy)
    assert wrapped  # trained on adversarial batches, not on cached features
    assert result.best_values["adversarial"] == "fgsm"
    assert search.apply_values(cfg, result.best_values).adversarial.adversarial_epsilon == 0.02


def test_search_space_refuses_unknown_attacks(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"adversarial": ["none", "cw"]}))
    with pytest.raises(ConfigError, match="adversarial values must be in"):
        search_space.load_overrides(str(path))


def test_the_attack_loss_takes_one_hot_soft_labels_too():
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    sparse = attacks.true_class_nll(tf.constant([0, 2]), probabilities)
    one_hot = attacks.true_class_nll(tf.one_hot([0, 2], 3), probabilities)
    np.testing.assert_allclose(one_hot, sparse, rtol=1e-6)
    mixed = attacks.true_class_nll(tf.constant([[0.5, 0.5, 0.0]]), probabilities[:1])
    np.testing.assert_allclose(mixed, [-(np.log(0.7) + np.log(0.2)) / 2], rtol=1e-5)
