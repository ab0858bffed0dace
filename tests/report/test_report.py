"""The report from a finished run's files (synthetic here; test_summaries covers a real run)."""
import json
import re
import subprocess
import sys

import headless_chromium
import numpy as np
import pytest
import test_compression_table
from conftest import make_config
from PIL import Image

from tftransfer.evaluate import metrics as classification_metrics
from tftransfer.outputs import files
from tftransfer.report import report

NAMES = ["cat", "dog", "bird"]


@pytest.fixture
def finished_run(tmp_path):
    cfg = make_config(tmp_path, dataset=str(tmp_path), hub_handle="https://example.org/m",
                      learning_rate=0.01)
    files.write_config(str(tmp_path / "config.json"), cfg,
                       chosen_hyperparameters={"dropout": 0.3})
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet(np.ones(3), 60)
    test = classification_metrics.compute(labels, probabilities, NAMES)
    metrics = {"test": test, "class_names": NAMES,
               "data": {"sizes": {"train": 200, "test": 60}, "skipped": {"corrupt": 2},
                        "class_counts": {"train": [70, 60, 70], "test": [20, 20, 20]}},
               "training": {"phases": [{"name": "head", "epochs": 1, "seconds": 3.0,
                                        "images_per_second": 66.0, "ema_momentum": 0.99,
                                        "history": {"loss": [1.0], "val_loss": [1.1]}}],
                            "warm_start": {"trial_id": "01", "validation_accuracy": 0.9,
                                           "kept": False}},
               "performance": {"device": "CPU: test", "parameters": {"total": 10},
                               "training_images_per_second": {"head": 66.0}},
               "budget": {"budget_seconds": 300.0, "spent_seconds": 281.4, "attempts": 2,
                          "final_epochs": 4,
                          "plan": {"trials": 9, "trial_epochs": 2, "search_fraction": 0.5,
                                   "why": "4 epoch(s) of the starting point secured"},
                          "stages": {"search": {"estimated": 120.0, "actual": 131.5}}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    search = {"tuner": "random", "objective": "val_accuracy", "prior": "small",
              "trials": [{"trial_id": "01", "status": "COMPLETED", "score": 0.9, "seconds": 5,
                          "hyperparameters": {"dropout": 0.3, "tuner/trial_id": "x"}},
                         {"trial_id": "00", "status": "FAILED", "score": None, "seconds": 1,
                          "hyperparameters": {"dropout": 0.1}}],
              "chosen_trial": "01",
              "do_no_harm": {"kept": "best", "start_scores": [0.85, 0.86], "best_score": 0.9,
                             "margin": 0.045, "noise": 0.01}}
    (tmp_path / "search.json").write_text(json.dumps(search))
    return tmp_path, metrics


def test_report_shows_config_data_search_metrics_and_performance(finished_run):
    folder, metrics = finished_run
    figures = report.run_figures(metrics, NAMES, np.zeros((4, 8, 8, 3)), [0, 1, 2, 0])
    assert set(figures) == {"learning_curves", "confusion_matrix", "augmented_samples"}
    markdown_path, html_path = report.write_report(str(folder), figures)
    text = open(markdown_path, encoding="utf-8").read()
    assert "| --learning_rate | 0.01 | 0.001 |" in text
    assert "| --augmentations | flip | flip,crop,rotation,contrast |" in text
    assert "| dropout | 0.3 |" in text                      # chosen by the search
    assert "Skipped files: 2 corrupt." in text
    assert "| bird | 70 | 20 |" in text                     # class counts per split
    assert "| 1 | 01 | COMPLETED | 0.9 | 5 | dropout=0.3 |" in text
    assert f"| test | {metrics['test']['accuracy']:.4g} | – | " \
           f"{metrics['test']['balanced_accuracy']:.4g} |" in text
    assert "| head | none (frozen) | 1 | 3 | 66 | 0.99 |" in text  # the weights' average (--ema)
    assert "Do no harm: trained trial 01, the best." in text
    assert ("started from trial 01's best epoch (validation accuracy 0.9); a later epoch "
            "beat it.") in text
    assert "margin +0.045 against noise 0.01." in text
    assert "9 trials planned, 2 epochs each on 50% of the training split" in text
    assert "| search | 120 | 131.5 |" in text and "| total | 300 | 281.4 |" in text
    assert "Device: CPU: test." in text
    assert "| training, phase head | throughput (images/s) | 66 |" in text
    assert text.count("](report_files/") == 3
    assert open(html_path, encoding="utf-8").read().count("base64,") == 3


def _markdown_tables_and_figures(text: str) -> tuple[list, list]:
    """The header cells of each table of report.md, and its figures' paths, in order."""
    lines = text.splitlines()
    headers = [line.strip("| ").split(" | ") for line, below in zip(lines, lines[1:])
               if below.startswith("|---")]
    return headers, re.findall(r"^!\[.*\]\((.*)\)$", text, re.M)


@pytest.mark.e2e
def test_report_html_opens_in_chromium_with_every_image_and_table(finished_run):
    folder, metrics = finished_run
    figures = report.run_figures(metrics, NAMES, np.zeros((4, 8, 8, 3)), [0, 1, 2, 0])
    markdown_path, html_path = report.write_report(str(folder), figures)
    page = headless_chromium.render(html_path)
    broken = [image["alt"] for image in page["images"]
              if not image["complete"] or image["width"] == 0]
    assert not broken, f"images that did not load in Chromium: {broken}"
    headers, figure_paths = _markdown_tables_and_figures(
        open(markdown_path, encoding="utf-8").read())
    pngs = [Image.open(folder / path).convert("RGBA") for path in figure_paths]
    assert [(image["width"], image["height"]) for image in page["images"]] == \
        [png.size for png in pngs]
    for image, png, path in zip(page["images"], pngs, figure_paths):  # drawn whole
        expected_rgba = np.asarray(png).mean(axis=(0, 1)).tolist()
        assert image["rgba"] == pytest.approx(expected_rgba, abs=1), \
            f"{image['alt']}: Chromium drew another picture than {path}"
    assert len(pngs) == 3
    assert page["tables"] == headers
    assert ["flag", "value", "default"] in headers and ["stage", "estimated (s)",
                                                        "actual (s)"] in headers


@pytest.mark.e2e
def test_rebuild_cli_keeps_the_samples_and_adds_new_results(finished_run):
    folder, metrics = finished_run
    report.write_report(str(folder), report.run_figures(metrics, NAMES, np.zeros((2, 8, 8, 3)),
                                                        [0, 1]))
    (folder / "compression.json").write_text(json.dumps(test_compression_table.RESULT))
    result = subprocess.run([sys.executable, "-m", "tftransfer.report",
                             f"--output_dir={folder}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    text = (folder / "report.md").read_text(encoding="utf-8")
    assert "![Augmented training samples]" in text and "## Compression" in text
    assert "| pruned | 91.00% | -2.00 pt |" in text and "Skipped keras_int8" in text
    assert "## Metrics" in (folder / "model_card.md").read_text(encoding="utf-8")


@pytest.mark.e2e
def test_rebuild_cli_without_a_run_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tftransfer.report",
                             f"--output_dir={tmp_path}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: --output_dir: no metrics.json and config.json "
                                      f"in {tmp_path}")


def _calibration_block(labels, before, after, temperature):
    block = {"temperature": temperature, "fitted_on": "validation",
             "reliability": {"split": "test",
                             "before": classification_metrics.reliability_bins(labels, before),
                             "after": classification_metrics.reliability_bins(labels, after)}}
    scores = {when: classification_metrics.compute(labels, p, NAMES)
              for when, p in (("before", before), ("after", after))}
    block["test"] = {f"{key}_{when}": scores[when][metric] for when in scores
                     for key, metric in (("ece", "expected_calibration_error"),
                                         ("nll", "loss"), ("accuracy", "accuracy"))}
    return block


def test_report_shows_roc_curves_and_the_calibration(finished_run):
    folder, metrics = finished_run
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 60)
    before = rng.dirichlet(np.ones(3) * 0.2, 60)
    after = np.full_like(before, 1 / 3)
    metrics = {**metrics,
               "roc_curves": {"split": "test", **classification_metrics.roc_curves(
                   labels, after, NAMES)},
               "calibration": _calibration_block(labels, before, after, 2.345)}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    figures = report.run_figures(metrics, NAMES)
    assert {"roc_curves", "reliability_diagram"} <= set(figures)
    markdown_path, _ = report.write_report(str(folder), figures)
    text = open(markdown_path, encoding="utf-8").read()
    assert "![One-vs-rest ROC curves (test split; AUC in brackets)]" in text
    assert "## Calibration" in text and "T = 2.345, fitted on the validation split" in text
    row = metrics["calibration"]["test"]
    assert (f"| test | {row['ece_before']:.4g} | {row['ece_after']:.4g} | "
            f"{row['nll_before']:.4g} | {row['nll_after']:.4g} |") in text
    assert "![Reliability diagram before and after temperature scaling (test split)]" in text


def test_report_shows_the_test_time_augmentation_gain(finished_run):
    folder, metrics = finished_run
    metrics = {**metrics, "tta": {"mode": "flip", "test": {
        "accuracy": 0.75, "accuracy_without_tta": 0.7, "loss": 0.61, "loss_without_tta": 0.66}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    markdown_path, _ = report.write_report(str(folder), report.run_figures(metrics, NAMES))
    text = open(markdown_path, encoding="utf-8").read()
    assert "## Test-time augmentation" in text and "--tta=flip" in text
    assert "| test | 0.7 | 0.75 | 0.66 | 0.61 |" in text


def test_mixed_training_samples_are_titled_by_their_two_largest_shares(finished_run):
    _, metrics = finished_run
    soft = np.array([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]], np.float32)
    assert report._sample_title(soft[0], NAMES) == "cat 70% / dog 30%"
    assert report._sample_title(soft[1], NAMES) == "bird 100%"
    figures = report.run_figures(metrics, NAMES, np.zeros((2, 8, 8, 3)), soft)
    assert "augmented_samples" in figures
