"""End to end: flags -> config -> data -> model -> train -> evaluate -> export."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from conftest import make_config, serve_in_fresh_process
from PIL import Image

from tftransfer.cli import run as run_lib

# Whole-pipeline runs (run_lib.run, most on the real Lite0 and Fashion-MNIST) and CLI subprocesses.
pytestmark = pytest.mark.e2e


def _changed_variables(handle, classifier):
    backbone = classifier.backbone
    original = {v.name: v.numpy() for v in hub.load(handle).variables}
    return {v.name for v in backbone.module.variables
            if not np.array_equal(original[v.name], v.numpy())}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, fashion_mnist_dir, lite0_handle):
    """Lite0 (ImageNet) fine-tuned on 600 real Fashion-MNIST images at 32 px."""
    out = tmp_path_factory.mktemp("real_run")
    cfg = make_config(out, dataset="fashion_mnist", data_dir=fashion_mnist_dir,
                      hub_handle=lite0_handle, train_split="train[:600]",
                      test_split="test[:300]", validation_fraction=0.2, image_size=32,
                      batch_size=32, fine_tune_depth=2, epochs=4, head_epochs=2,
                      learning_rate=3e-3, early_stopping_patience=0)
    return cfg, run_lib.run(cfg)


def test_real_run_learns_and_writes_every_output(real_run):
    cfg, outputs = real_run
    metrics = json.load(open(os.path.join(cfg.output_dir, "metrics.json")))
    assert metrics["test"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert np.isfinite(metrics["test"]["loss"])
    test = metrics["test"]
    for key in ("macro_f1", "weighted_f1", "auc_roc_macro_ovr", "expected_calibration_error",
                "top5_accuracy", "confusion_matrix", "per_class"):
        assert key in test, key
    assert np.sum(test["confusion_matrix"]) == test["num_examples"] == 300
    assert [c["class"] for c in test["per_class"]][0] == "T-shirt/top"
    assert 0.5 < test["auc_roc_macro_ovr"] <= 1.0
    perf = metrics["performance"]
    assert perf["device"].startswith("CPU: ")
    for model in ("keras_model", "saved_model"):
        speed = perf[model]
        assert 0 < speed["latency_ms_p50"] <= speed["latency_ms_p95"]
        assert speed["throughput_images_per_s"] > 0 and speed["serving_batch"] == 32
    assert perf["parameters"]["total"] > perf["parameters"]["trainable"] > 0
    assert perf["export_megabytes"] > 10  # Lite0's 4.7M float32 weights
    assert perf["peak_host_memory_megabytes"] > 100
    assert set(perf["training_images_per_second"]) == {"head", "fine_tune"}
    counts = metrics["data"]["class_counts"]  # counted by a pass over the TFDS splits
    assert sum(counts["test"]) == 300 and sum(counts["train"]) == 480
    assert len(counts["train"]) == 10
    for name in ("report.md", "report.html", "report_files/confusion_matrix.png"):
        assert os.path.getsize(os.path.join(cfg.output_dir, name)) > 1000, name
    for name in ("config.json", "labels.txt", "metrics.json", "saved_model/1/saved_model.pb",
                 "saved_model/1/assets/labels.txt",
                 "saved_model/1/assets.extra/tf_serving_warmup_requests",
                 "model_card.md", "saved_model/1/assets/model_card.md"):
        assert os.path.isfile(os.path.join(cfg.output_dir, name)), name
    assert open(os.path.join(cfg.output_dir, "labels.txt")).read().split("\n")[0] == "T-shirt/top"
    card = open(os.path.join(cfg.output_dir, "saved_model/1/assets/model_card.md")).read()
    assert "Licence of the backbone's weights: Apache Software License 2.0" in card
    assert "| accuracy |" in card and "Test split, 300 images" in card
    events = [f for _, _, files in os.walk(os.path.join(cfg.output_dir, "tensorboard"))
              for f in files if f.startswith("events.out")]
    assert len(events) >= 2  # train and validation writers


def test_real_run_fine_tunes_exactly_the_top_blocks(real_run, lite0_handle):
    _, outputs = real_run
    changed = _changed_variables(lite0_handle, outputs.classifier)
    module = outputs.classifier.backbone.module
    expected = {v.name for v in module.trainable_variables
                if v.name.startswith(("blocks_14/", "blocks_15/", "head/"))}
    assert changed == expected


def test_real_export_in_fresh_process_matches_the_model_on_png_bytes(real_run, tmp_path):
    cfg, outputs = real_run
    images, _ = next(iter(outputs.data.test))
    raw = tf.data.Dataset.from_tensor_slices([0])  # keep tf initialised in this process
    del raw
    import tensorflow_datasets as tfds
    originals = tfds.load("fashion_mnist", split="test[:8]", data_dir=cfg.data.data_dir,
                          as_supervised=True)
    files = []
    for i, (image, _) in enumerate(originals.as_numpy_iterator()):
        path = str(tmp_path / f"{i}.png")
        Image.fromarray(image[..., 0]).save(path)
        files.append(path)
    served = serve_in_fresh_process(outputs.export_dir, files, tmp_path)
    expected = outputs.classifier.predict(images[:8], verbose=0)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    names = outputs.data.class_names
    assert list(served["classes"]) == [names[i] for i in expected.argmax(axis=1)]


def test_depth_zero_leaves_the_real_backbone_bit_identical(tmp_path, fashion_mnist_dir,
                                                           lite0_handle):
    cfg = make_config(tmp_path, dataset="fashion_mnist", data_dir=fashion_mnist_dir,
                      hub_handle=lite0_handle, train_split="train[:200]",
                      test_split="test[:64]", image_size=32, fine_tune_depth=0, epochs=1)
    outputs = run_lib.run(cfg)
    assert _changed_variables(lite0_handle, outputs.classifier) == set()


def test_mirrored_strategy_with_two_replicas_trains_and_exports(tmp_path, tiny_hub_dir,
                                                               color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      strategy="mirrored", fine_tune_depth=1, epochs=3, head_epochs=1,
                      learning_rate=0.05)
    outputs = run_lib.run(cfg)
    assert tf.distribute.has_strategy() is False
    module = outputs.classifier.backbone.module
    replicas = module.variables[-1].values
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())
    assert outputs.metrics["test"]["accuracy"] > 0.5
    assert os.path.isfile(os.path.join(outputs.export_dir, "saved_model.pb"))


def test_a_run_with_mixing_and_flip_tta_evaluates_and_exports_the_average(tmp_path,
                                                                         tiny_hub_dir,
                                                                         color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, epochs=3,
                      head_epochs=3, learning_rate=0.05, early_stopping_patience=0,
                      augmentations=["flip", "mixup", "cutmix"], tta="flip", export_tta=True,
                      export_tflite=["float"], warmup_requests=0)
    metrics = run_lib.run(cfg).metrics
    block = metrics["tta"]
    assert block["mode"] == "flip"
    for split in ("validation", "test"):
        assert block[split]["accuracy"] == metrics[split]["accuracy"]
        assert block[split]["loss"] == pytest.approx(metrics[split]["loss"])
        assert block[split]["loss"] != pytest.approx(block[split]["loss_without_tta"],
                                                     abs=1e-6)
    assert metrics["test"]["accuracy"] > 0.5  # 3 colour classes: chance is 1/3
    # The export and the TFLite model average too: they score what the evaluation did.
    rows = json.load(open(tmp_path / "compression.json"))["variants"]
    for row in rows:
        assert row["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    report = open(tmp_path / "report.md", encoding="utf-8").read()
    assert "## Test-time augmentation" in report


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tftransfer.run", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_with_flagfile_and_override(tmp_path, tiny_hub_dir, color_folder):
    flagfile = tmp_path / "small.flags"
    flagfile.write_text(f"--dataset={color_folder}\n--hub_handle={tiny_hub_dir}\n"
                        "--image_size=24\n--epochs=5\n--output_dir=/nonexistent/never\n")
    out = tmp_path / "out"
    result = _cli(f"--flagfile={flagfile}", "--epochs=1", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.load(open(out / "config.json"))["train"]["epochs"] == 1
    assert os.listdir(out / "saved_model") == ["1"]


def test_cli_data_error_is_one_line_exit_2(tmp_path, tiny_hub_dir, color_folder):
    result = _cli("--dataset=no_such_dataset_xyz", f"--hub_handle={tiny_hub_dir}",
                  f"--output_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown TFDS dataset 'no_such_dataset_xyz' (and no such folder)")


def test_search_then_final_training_records_the_choice(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      search="hyperband", search_epochs=2, epochs=2, learning_rate=0.05)
    outputs = run_lib.run(cfg)
    saved = json.load(open(tmp_path / "config.json"))
    chosen = saved["chosen_hyperparameters"]
    search = json.load(open(tmp_path / "search.json"))
    best = max((t for t in search["trials"] if t["score"] is not None), key=lambda t: t["score"])
    trained = next(t for t in search["trials"] if t["trial_id"] == search["chosen_trial"])
    assert chosen == trained["hyperparameters"]
    # Do no harm: the best trial, unless its margin over the starting point is noise.
    decision = search["do_no_harm"]
    if decision["kept"] == "best":
        assert trained is best
    else:
        assert round(trained["score"], 4) == decision["start_scores"][0]
    assert saved["backbone"]["fine_tune_depth"] == chosen["fine_tune_depth"]
    # The final training starts from the chosen trial's best epoch and ends no worse.
    training = outputs.metrics["training"]
    assert training["warm_start"]["trial_id"] == search["chosen_trial"]
    assert training["best_validation_accuracy"] >= trained["score"] - 1e-6
    assert training["warm_start"]["kept"] == (
        training["best_validation_accuracy"] == training["warm_start"]["validation_accuracy"])
    # SGD trials search their own learning rate, which becomes --learning_rate.
    learning_rate = chosen["sgd_learning_rate" if chosen["optimizer"] == "sgd" else "learning_rate"]
    assert (saved["train"]["optimizer"], saved["train"]["learning_rate"]) == (
        chosen["optimizer"], learning_rate)
    assert os.path.isfile(os.path.join(outputs.export_dir, "saved_model.pb"))


def test_predict_cli_on_the_real_export_with_real_fashion_mnist_photos(real_run):
    from tftransfer.assets.efficientnet_lite import sample_images
    from tftransfer.cli import predict
    _, outputs = real_run
    samples = sample_images("fashionMNIST")
    results = predict.predict_files(outputs.export_dir, [p for p, _ in samples], top_k=3,
                                    batch_size=8)
    names = outputs.data.class_names
    assert len(results) == len(samples) == 20
    for result in results:
        probabilities = [p["probability"] for p in result["predictions"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert all(p["class"] in names for p in result["predictions"])
    top1 = [names.index(r["predictions"][0]["class"]) for r in results]
    assert sum(t == label for t, (_, label) in zip(top1, samples)) >= 10  # chance is 2


def test_evaluate_cli_on_the_export_reproduces_the_run_metrics(real_run, tmp_path):
    cfg, outputs = real_run
    out = tmp_path / "eval.json"
    result = subprocess.run(
        [sys.executable, "-m", "tftransfer.evaluate",  # the base folder: its highest version
         f"--model_dir={os.path.join(cfg.output_dir, 'saved_model')}",
         "--dataset=fashion_mnist", f"--data_dir={cfg.data.data_dir}", "--split=test[:300]",
         f"--output={out}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    exported = json.load(open(out))["test[:300]"]
    in_process = outputs.metrics["test"]
    # The serving graph and Keras' graph agree to ~1e-6; a near-tie may flip one argmax.
    moved = np.abs(np.subtract(exported["confusion_matrix"], in_process["confusion_matrix"]))
    assert moved.sum() <= 2, (exported["confusion_matrix"], in_process["confusion_matrix"])
    assert exported["accuracy"] == pytest.approx(in_process["accuracy"], abs=1 / 300 + 1e-9)
    assert exported["auc_roc_macro_ovr"] == pytest.approx(in_process["auc_roc_macro_ovr"],
                                                          abs=1e-3)
    assert exported["loss"] > 0


def test_evaluate_cli_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tftransfer.evaluate",
                             f"--model_dir={tmp_path}", "--dataset=fashion_mnist"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --model_dir: {tmp_path} is not a SavedModel folder, nor a folder of numbered "
        "SavedModel versions")


def test_compare_scratch_adds_a_scratch_row_and_accuracy_against_time(tmp_path, tiny_hub_dir,
                                                                     color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      fine_tune_depth=1, epochs=2, head_epochs=1, compare_scratch=True)
    metrics = run_lib.run(cfg).metrics
    assert [row["model"] for row in metrics["comparison"]] == ["single", "from scratch"]
    assert metrics["scratch"]["training"]["phases"][0]["fine_tune_depth"] == -1
    report = open(tmp_path / "report.md", encoding="utf-8").read()
    assert "| from scratch |" in report
    assert "](report_files/transfer_gain.png)" in report
