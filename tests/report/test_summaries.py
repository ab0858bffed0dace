"""TensorBoard output of a real (tiny) run, served by the real `tensorboard` program."""
import glob
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import make_config

from tftransfer.cli import run as run_lib

# A whole-pipeline run (run_lib.run with profiling) read back, and a TensorBoard server process.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_hub_dir, color_folder):
    out = tmp_path_factory.mktemp("tiny_run")
    cfg = make_config(out, dataset=color_folder, hub_handle=tiny_hub_dir, fine_tune_depth=1,
                      epochs=2, head_epochs=1, learning_rate=0.05, profile_steps=2,
                      augmentations=["flip", "contrast"], calibrate=True)
    run_lib.run(cfg)
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def tensorboard_url(tiny_run):
    port = _free_port()
    server = subprocess.Popen(
        ["tensorboard", f"--logdir={tiny_run.output_dir}/tensorboard", "--host=127.0.0.1",
         f"--port={port}", "--load_fast=false", "--reload_interval=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _get(f"{url}/data/plugin/images/tags"):
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tensorboard did not serve the run: "
                                     f"{server.stderr.read()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        server.kill()
        server.wait()


def _tags(listing: dict) -> set[str]:
    return {f"{run}:{tag}" for run, tags in listing.items() for tag in tags}


def test_tensorboard_serves_scalars_images_text_and_pr_curves(tensorboard_url):
    scalars = _tags(_get(f"{tensorboard_url}/data/plugin/scalars/tags"))
    assert {"train:epoch_loss", "validation:epoch_accuracy", "evaluation:test/accuracy",
            "evaluation:test/macro_f1", "evaluation:calibration/temperature",
            "evaluation:calibration/test/ece_before",
            "evaluation:calibration/validation/ece_after"} <= scalars, scalars
    images = _tags(_get(f"{tensorboard_url}/data/plugin/images/tags"))
    assert {"evaluation:evaluation/confusion_matrix", "evaluation:training/learning_curves",
            "evaluation:data/augmented_training_samples", "evaluation:evaluation/roc_curves",
            "evaluation:evaluation/reliability_diagram"} <= images, images
    text = _tags(_get(f"{tensorboard_url}/data/plugin/text/tags"))
    assert {"evaluation:metrics/summary", "evaluation:metrics/per_class"} <= text, text
    curves = _tags(_get(f"{tensorboard_url}/data/plugin/pr_curves/tags"))
    assert {f"evaluation:class_{k:03d}/pr_curves" for k in range(3)} <= curves, curves


def test_tensorboard_hparams_lists_the_run_config_and_metrics(tensorboard_url):
    experiment = _get(f"{tensorboard_url}/data/plugin/hparams/experiment",
                      {"experimentName": ""})
    hparams = {info["name"] for info in experiment["hparamInfos"]}
    assert {"learning_rate", "fine_tune_depth", "head_units", "optimizer"} <= hparams
    metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert "hparams/accuracy" in metrics, metrics


def test_profile_of_the_requested_steps_is_written(tiny_run):
    traces = glob.glob(os.path.join(tiny_run.output_dir, "tensorboard", "train", "plugins",
                                    "profile", "*", "*.xplane.pb"))
    assert traces and os.path.getsize(traces[0]) > 0


def test_report_embeds_the_run_figures(tiny_run):
    out = tiny_run.output_dir
    markdown = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    for name in ("learning_curves", "confusion_matrix", "augmented_samples", "roc_curves",
                 "reliability_diagram"):
        png = os.path.join(out, "report_files", f"{name}.png")
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 2000
        assert f"report_files/{name}.png" in markdown
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert html.count("data:image/png;base64,") == 5
    assert "class_0" in markdown and "Per class" in markdown


def test_metrics_hold_the_calibration_and_the_export_its_temperature(tiny_run):
    import tensorflow as tf
    metrics = json.load(open(os.path.join(tiny_run.output_dir, "metrics.json")))
    calibration = metrics["calibration"]
    assert calibration["fitted_on"] == "validation" and calibration["temperature"] > 0
    for split in ("validation", "test"):
        row = calibration[split]
        assert row["accuracy_before"] == row["accuracy_after"] == metrics[split]["accuracy"]
        assert row["ece_after"] == metrics[split]["expected_calibration_error"]
    assert calibration["validation"]["nll_after"] <= calibration["validation"]["nll_before"]
    assert metrics["roc_curves"]["split"] == "test"
    assert len(metrics["roc_curves"]["classes"]) == 3 and metrics["roc_curves"]["macro"]
    exported = tf.saved_model.load(os.path.join(tiny_run.output_dir, "saved_model", "1"))
    (stored,) = [v for v in exported.model_variables if "temperature" in v.name]
    assert float(stored.numpy()) == pytest.approx(calibration["temperature"], rel=1e-6)
