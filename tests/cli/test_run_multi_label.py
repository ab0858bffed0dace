"""End to end with --labels_csv: a multi-label folder -> sigmoid classifier -> thresholds
chosen on validation -> test mAP/F1 -> an export returning thresholded labels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config
from PIL import Image

from tftransfer.cli import run as run_lib
from tftransfer.export import signatures

pytestmark = pytest.mark.e2e

LABELS = ("blue", "green", "red")   # the sorted vocabulary; channel c lights label LABELS[2-c]


def write_multi_label_folder(root, count: int = 90, seed: int = 0) -> tuple[str, str]:
    """Noisy images whose bright channels are their labels (one or two per image), and
    their labels.csv; returns (folder, csv path)."""
    rng = np.random.default_rng(seed)
    rows = ["filename,labels"]
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    for i in range(count):
        hot = np.zeros(3, bool)
        hot[rng.choice(3, size=1 + i % 2, replace=False)] = True
        pixels = np.clip(rng.normal(40 + 170 * hot, 25, (20, 20, 3)), 0, 255).astype("uint8")
        name = f"images/{i}.png"
        Image.fromarray(pixels).save(os.path.join(root, name))
        channel_names = ("red", "green", "blue")
        rows.append(f"{name},{' '.join(channel_names[c] for c in np.flatnonzero(hot))}")
    csv_path = os.path.join(root, "labels.csv")
    with open(csv_path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return str(root), csv_path


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory, tiny_hub_dir):
    folder, csv_path = write_multi_label_folder(tmp_path_factory.mktemp("multi"))
    out = tmp_path_factory.mktemp("multi_run")
    cfg = make_config(out, dataset=folder, labels_csv=csv_path, hub_handle=tiny_hub_dir,
                      validation_fraction=0.25, test_fraction=0.25, epochs=12,
                      head_epochs=12, learning_rate=0.05, label_smoothing=0.0,
                      early_stopping_patience=0)
    return cfg, run_lib.run(cfg), folder


def test_multi_label_run_learns_and_records_its_thresholds(multi_label_run):
    cfg, outputs, _ = multi_label_run
    metrics = json.load(open(os.path.join(cfg.output_dir, "metrics.json")))
    assert metrics["class_names"] == list(LABELS)
    block = metrics["multi_label"]
    assert block["thresholds_from"] == "validation"
    assert set(block["thresholds"]) == set(LABELS)
    assert all(0 < t < 1 for t in block["thresholds"].values())
    test = block["test"]
    assert test["num_examples"] == metrics["data"]["sizes"]["test"] > 0
    assert test["mean_average_precision"] > 0.8  # chance is about the label frequency, 0.5
    assert 0 <= test["micro_f1"] <= 1 and 0 <= test["macro_f1"] <= 1
    assert [r["label"] for r in test["per_label"]] == list(LABELS)
    assert all(r["auc_roc"] is not None for r in test["per_label"])
    assert "test" not in metrics and "validation" not in metrics  # no single-label blocks
    assert metrics["training"]["best_validation_auc"] > 0.5
    assert "val_auc" in metrics["training"]["phases"][0]["history"]
    assert outputs.data.multi_label
    counts = metrics["data"]["class_counts"]["train"]
    assert len(counts) == 3 and sum(counts) > metrics["data"]["sizes"]["train"]  # 1-2 each


def test_multi_label_report_and_tensorboard_show_its_metrics(multi_label_run):
    cfg, _, _ = multi_label_run
    report = open(os.path.join(cfg.output_dir, "report.md")).read()
    assert "Multi-label metrics" in report and "mAP" in report
    card = open(os.path.join(cfg.output_dir, "model_card.md")).read()
    assert "into 3 labels, any number per image (blue, green, red)" in card
    assert "a sigmoid per label over 3 labels" in card and "| test |" in card
    from tensorboard.backend.event_processing import event_accumulator
    folder = os.path.join(cfg.output_dir, "tensorboard", "evaluation")
    events = event_accumulator.EventAccumulator(folder, size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    for tag in ("test/mean_average_precision", "test/micro_f1", "validation/macro_f1",
                "hparams/mean_average_precision"):
        assert tag in tags, tag


def test_multi_label_export_returns_probabilities_and_labels_above_threshold(
        multi_label_run):
    cfg, outputs, folder = multi_label_run
    metrics = json.load(open(os.path.join(cfg.output_dir, "metrics.json")))
    thresholds = np.array([metrics["multi_label"]["thresholds"][n] for n in LABELS])
    files = [os.path.join(folder, "images", f"{i}.png") for i in range(8)]
    loaded = tf.saved_model.load(outputs.export_dir)
    served = loaded.signatures[signatures.BYTES.name](
        images=tf.constant([open(f, "rb").read() for f in files]))
    assert set(served) == set(signatures.MULTI_LABEL_OUTPUTS)
    probabilities = served[signatures.PROBABILITIES].numpy()
    assert probabilities.shape == (8, 3)
    pixels = np.stack([np.asarray(Image.open(f)) for f in files])
    resized = tf.image.resize(tf.constant(pixels), (cfg.data.image_size,) * 2) / 255.0
    np.testing.assert_allclose(probabilities, outputs.classifier.predict(resized), atol=2e-2)
    above = served[signatures.ABOVE_THRESHOLD].numpy()
    np.testing.assert_array_equal(above, probabilities >= thresholds)
    labels = served[signatures.LABELS].numpy().astype(str)
    for row, hot, probs in zip(labels, above, probabilities):
        kept = [name for name in row if name]
        assert set(kept) == {LABELS[k] for k in np.flatnonzero(hot)}
        assert kept == sorted(kept, key=lambda n: -probs[LABELS.index(n)])
        assert list(row[len(kept):]) == [""] * (3 - len(kept))
    pixel_outputs = loaded.signatures[signatures.PIXELS.name](pixels=tf.constant(pixels))
    np.testing.assert_allclose(pixel_outputs[signatures.PROBABILITIES].numpy(), probabilities,
                               atol=1e-5)


def test_predict_lists_the_labels_above_threshold_and_evaluate_refuses(multi_label_run):
    from tftransfer.cli import evaluate as evaluate_cli, predict as predict_cli
    from tftransfer.config.errors import UserError

    _, outputs, folder = multi_label_run
    files = [os.path.join(folder, "images", f"{i}.png") for i in range(4)]
    results = predict_cli.predict_files(outputs.export_dir, files, top_k=3)
    served = tf.saved_model.load(outputs.export_dir).signatures[signatures.BYTES.name](
        images=tf.constant([open(f, "rb").read() for f in files]))
    for result, row in zip(results, served[signatures.LABELS].numpy().astype(str)):
        assert result["labels"] == [name for name in row if name]
    assert "labels above threshold:" in predict_cli.format_table(results)
    with pytest.raises(UserError, match="is a multi-label .--labels_csv. export"):
        evaluate_cli.evaluate_export(outputs.export_dir, folder, "", "all", 8)


def test_cli_bad_labels_csv_is_one_line_exit_2(tmp_path, tiny_hub_dir):
    folder, _ = write_multi_label_folder(tmp_path / "data", count=4)
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,labels\nimages/0.png,red\nimages/1.png,\n")
    result = subprocess.run([sys.executable, "-m", "tftransfer.run", f"--dataset={folder}",
                             f"--labels_csv={bad}", f"--hub_handle={tiny_hub_dir}",
                             f"--output_dir={tmp_path / 'out'}"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --labels_csv: bad.csv line 3: images/1.png has no labels")


def test_a_tfds_sequence_label_runs_multi_label_and_refuses_single_label_options(
        tmp_path, tiny_hub_dir):
    from tiny_tfds import NAMES, TinyMultiLabel

    from tftransfer.config.run_config import ConfigError

    data_dir = str(tmp_path / "tfds")
    TinyMultiLabel(data_dir=data_dir).download_and_prepare()
    flags = dict(dataset="tiny_multi_label", data_dir=data_dir, hub_handle=tiny_hub_dir,
                 validation_fraction=0.25, epochs=1, batch_size=4)
    outputs = run_lib.run(make_config(tmp_path / "run", **flags))
    block = outputs.metrics["multi_label"]
    assert block["label_names"] == NAMES and block["test"]["num_examples"] == 4
    served = tf.saved_model.load(outputs.export_dir).signatures[signatures.PIXELS.name](
        pixels=tf.zeros([2, 8, 8, 3], tf.uint8))
    assert served[signatures.LABELS].shape == (2, 3)
    with pytest.raises(ConfigError, match="^--class_weight: is not supported with "
                                          "multi-label data"):
        run_lib.run(make_config(tmp_path / "refused", class_weight="balanced", **flags))
