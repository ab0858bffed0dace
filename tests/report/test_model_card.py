"""The model card: sections from a sample run's dicts, and the card in a real
export's assets/."""
import json
import os

import numpy as np
from conftest import make_config
from scipy import stats

from tftransfer.evaluate import metrics as classification_metrics
from tftransfer.outputs import files
from tftransfer.report import intervals, model_card

NAMES = ["cat", "dog", "bird"]


def _scores(n=60, seed=0, skill=2.0):
    """metrics.compute on labels and probabilities leaning towards the label by `skill`."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + skill * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return classification_metrics.compute(labels, probabilities, NAMES)


def _config(tmp_path, **values):
    cfg = make_config(tmp_path, dataset=str(tmp_path), hub_handle="https://example.org/m",
                      **values)
    return json.loads(json.dumps(cfg.to_dict()))


def _metrics(test=True, train_counts=(70, 60, 70)):
    metrics = {"class_names": NAMES, "validation": _scores(40, seed=1),
               "data": {"sizes": {"train": sum(train_counts), "validation": 40},
                        "skipped": {},
                        "class_counts": {"train": list(train_counts)}},
               "training": {"phases": [{"name": "head", "epochs": 1},
                                       {"name": "fine_tune", "epochs": 3}]}}
    if test:
        metrics["test"] = _scores(60)
        metrics["data"]["sizes"]["test"] = 60
    return metrics


def _headings(card):
    return [line for line in card.splitlines() if line.startswith("#")]


def test_the_card_holds_every_section_with_correct_intervals(tmp_path):
    config = {**_config(tmp_path, learning_rate=0.01, robustness_eval=True, tta="flip",
                        export_tta=True),
              "chosen_hyperparameters": {"dropout": 0.3, "optimizer": "adam"}}
    metrics = _metrics()
    metrics["robustness"] = {"split": "test", "examples": 60, "clean_accuracy": 0.9,
                             "pgd_steps": 10, "reference_epsilon": 0.01,
                             "robust_accuracy": 0.4, "mean_corruption_accuracy": 0.8,
                             "attacks": [{"attack": "pgd", "epsilon": 0.01,
                                          "accuracy": 0.4}]}
    search = {"tuner": "random", "objective": "val_accuracy",
              "trials": [{"status": "COMPLETED", "score": 0.9},
                         {"status": "FAILED", "score": None}]}
    backbone = {"name": "Lite0", "source": "a package", "licence": "Apache 2.0"}
    card = model_card.build(config, metrics, search, backbone)
    assert _headings(card) == [
        f"# Model card: {tmp_path} classifier", "## Model", "## Data", "## Metrics",
        "## Calibration", "## Robustness", "## Training and hyperparameters",
        "## Intended use", "## Limitations"]
    test = metrics["test"]
    correct = int(np.trace(test["confusion_matrix"]))
    low, high = stats.binomtest(correct, 60).proportion_ci(method="wilson")
    assert (f"| accuracy | {100 * test['accuracy']:.1f} % | [{100 * low:.1f}, "
            f"{100 * high:.1f}] % | Wilson score |") in card
    f1_low, f1_high = intervals.macro_f1(test["confusion_matrix"])
    assert f"| macro-F1 | {100 * test['macro_f1']:.1f} % | [{100 * f1_low:.1f}, " in card
    assert "Test split, 60 images" in card and "Validation split, 40 images" in card
    assert f"{test['expected_calibration_error']:.4f}" in card
    assert "| cat | 70 |" in card                                  # class counts
    assert "Licence of the backbone's weights: Apache 2.0." in card
    assert "Backbone: `https://example.org/m`, Lite0." in card
    assert "| --learning_rate | 0.01 |" in card and "| dropout | 0.3 |" in card
    assert "| --tta | flip |" in card and "| --export_tta | True |" in card
    assert "Search: random, 2 trials (1 completed); best val_accuracy 0.9000." in card
    assert "under PGD (10 steps" in card and "do not use the model where inputs" in card
    assert "rest on 60 images" in card


def test_missing_optional_parts_are_left_out(tmp_path):
    metrics = _metrics(test=False)
    del metrics["data"]["class_counts"]
    card = model_card.build(_config(tmp_path), metrics)
    headings = _headings(card)
    assert "## Robustness" not in headings and "## Calibration" in headings
    assert "Chosen by the search" not in card and "No hyperparameter search ran" in card
    assert "Licence of the backbone's weights: unknown." in card
    assert "Provenance: not recorded with the backbone." in card
    assert "Test split" not in card and "There is no test split" in card
    assert "was not measured (--robustness_eval)" in card
    assert "imbalanced" not in card


def test_limitations_follow_the_data(tmp_path):
    card = model_card.build(_config(tmp_path), _metrics(train_counts=(300, 30, 100)))
    assert "imbalanced (10.0:1 between" in card
    assert "fewer than 50 training images: dog;" in card


def test_a_variant_gets_its_own_scores(tmp_path):
    metrics = _metrics()
    adversarial = {"attack": "pgd", "epsilon": 0.01, "epochs": 1, "test": _scores(60, seed=7),
                   "export_dir": "x"}
    card = model_card.build(_config(tmp_path), model_card._variant_metrics(
        {**metrics, "adversarial": adversarial}, "adversarial"), variant="adversarial")
    assert card.startswith(f"# Model card: {tmp_path} classifier (adversarial)")
    assert "adversarially fine-tuned copy (pgd, epsilon 0.01" in card
    assert f"| accuracy | {100 * adversarial['test']['accuracy']:.1f} % |" in card


def test_the_card_lands_in_the_export_assets(tmp_path, tiny_hub_dir, color_folder):
    import tensorflow as tf

    from tftransfer.data import pipeline as data_lib
    from tftransfer.export import client as client_lib, saved_model as export, signatures
    from tftransfer.model import classifier as model_lib

    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    files.write_config(str(tmp_path / "config.json"), cfg)
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    classifier = model_lib.build_model(cfg, data.num_classes)
    export_dir = export.export_saved_model(classifier, data.class_names, cfg.data.image_size,
                                           classifier.backbone.module,
                                           str(tmp_path / "saved_model"))
    written = model_card.write_model_cards(str(tmp_path), export_dir)
    in_assets = os.path.join(export_dir, "assets", "model_card.md")
    assert written == [str(tmp_path / "model_card.md"), in_assets]
    card = open(in_assets, encoding="utf-8").read()
    assert card == (tmp_path / "model_card.md").read_text(encoding="utf-8")
    assert f"Backbone: `{tiny_hub_dir}`." in card and "weights: unknown." in card
    # The export still loads and serves with the card beside labels.txt.
    client = client_lib.ServingClient(export_dir)
    pixels = tf.zeros([2, 30, 30, 3], tf.uint8)
    assert client.probabilities(signatures.PIXELS, pixels).shape == (2, 3)


def test_a_backbone_folder_provenance_is_read(tmp_path):
    (tmp_path / "provenance.json").write_text(json.dumps({"licence": "MIT"}))
    assert model_card.read_backbone_provenance(str(tmp_path)) == {"licence": "MIT"}
    assert model_card.read_backbone_provenance("https://example.org/m") is None
