import json
import os
import types

import keras
import numpy as np
import pytest
from conftest import make_config, write_color_folder

from tftransfer.compress import compression
from tftransfer.config.errors import DataError
from tftransfer.data import pipeline as data_lib
from tftransfer.export import saved_model as export
from tftransfer.model import classifier as model_lib
from tftransfer.report import compression_table
from tftransfer.train import training as train_lib

TFLITE = ["float", "dynamic", "float16", "int8"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, tiny_hub_dir):
    """Trained to 100 % on colours (top block fine-tuned), every variant built, evaluated
    and timed."""
    out = tmp_path_factory.mktemp("compression")
    folder = write_color_folder(tmp_path_factory.mktemp("colors"), per_class=40)
    cfg = make_config(out, dataset=folder, hub_handle=tiny_hub_dir, test_fraction=0.3,
                      fine_tune_depth=1, epochs=15, head_epochs=13, learning_rate=0.1,
                      early_stopping_patience=0,
                      export_tflite=TFLITE, export_onnx=True, keras_int8=True,
                      prune_sparsity=0.5,
                      prune_epochs=1, representative_examples=16)
    keras.utils.set_random_seed(cfg.seed)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    classifier = model_lib.build_model(cfg, data.num_classes)
    backbone = classifier.backbone
    # The final weights, not train()'s best checkpoint: that is the first epoch to reach
    # 100 % validation accuracy, whose margins are too thin to survive int8 reliably.
    train_lib.run_phases(classifier, backbone, data.train, None, data.sizes["train"],
                         data.num_classes, cfg, [])
    export_dir = export.export_saved_model(classifier, data.class_names, cfg.data.image_size,
                                           backbone.module, os.path.join(out, "saved_model"))
    float_weights = [w.numpy() for w in classifier.weights]
    result = compression.compress_and_evaluate(classifier, data, cfg, export_dir)
    return cfg, data, classifier, float_weights, result


def _rows(result):
    return {row["variant"]: row for row in result["variants"]}


def test_every_compressed_model_is_measured_and_written(compressed):
    cfg, data, _, _, result = compressed
    assert [r["variant"] for r in result["variants"]] == [
        "saved_model", "tflite_float", "tflite_dynamic", "tflite_float16", "tflite_int8",
        "onnx", "keras_int8", "pruned"]
    assert result["skipped"] == [] and result["split"] == "test"
    assert result["num_examples"] == data.sizes["test"] == 36
    for row in result["variants"]:
        assert os.path.exists(row["path"]), row["variant"]
        assert 0 < row["gzip_size_bytes"] < row["size_bytes"]
        assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
        assert row["throughput_images_per_s"] > 0
    for variant in TFLITE:
        assert os.path.isfile(os.path.join(cfg.output_dir, "tflite", f"{variant}.tflite"))
    onnx_row = _rows(result)["onnx"]
    assert onnx_row["path"] == os.path.join(cfg.output_dir, "onnx", "classifier.onnx")
    assert onnx_row["runtime"].startswith("ONNX Runtime ") and onnx_row["opset"] == 17
    with open(os.path.join(cfg.output_dir, "compression.json")) as f:
        assert json.load(f) == json.loads(json.dumps(result))


def test_quantized_variants_stay_within_tolerance(compressed):
    _, _, _, _, result = compressed
    rows = _rows(result)
    assert rows["saved_model"]["accuracy"] == 1.0  # colours are learnable
    for variant in ("tflite_float", "tflite_dynamic", "tflite_float16", "tflite_int8",
                    "onnx", "keras_int8"):
        assert rows[variant]["accuracy_drop"] <= 0.01, variant
        assert not rows[variant]["flagged"], variant
        assert rows[variant]["macro_f1"] == pytest.approx(rows["saved_model"]["macro_f1"],
                                                          abs=0.02)


def test_tflite_float_matches_the_keras_model(compressed):
    cfg, data, classifier, _, result = compressed
    predictor = compression.tflite_candidate(_rows(result)["tflite_float"]["path"],
                                             "float").predict
    images, _ = next(iter(data.test))
    np.testing.assert_allclose(predictor(images.numpy()),
                               classifier.predict(images, verbose=0), atol=1e-5)


def test_onnx_matches_the_keras_model_and_the_saved_model(compressed):
    _, data, classifier, _, result = compressed
    rows = _rows(result)
    predictor = compression.onnx_candidate(rows["onnx"]["path"]).predict
    images, _ = next(iter(data.test))
    np.testing.assert_allclose(predictor(images.numpy()),
                               classifier.predict(images, verbose=0), atol=1e-5)
    # The acceptance check: test accuracy within 0.1 point of the SavedModel's.
    assert abs(rows["onnx"]["accuracy"] - rows["saved_model"]["accuracy"]) <= 0.001


def test_int8_variant_really_holds_int8_tensors(compressed):
    rows = _rows(compressed[-1])
    int8_types, float_types = rows["tflite_int8"]["tensor_types"], rows["tflite_float"][
        "tensor_types"]
    assert int8_types.get("int8", 0) > int8_types.get("float32", 0)  # float only at the ends
    assert "int8" not in float_types and "float16" in rows["tflite_float16"]["tensor_types"]
    assert rows["tflite_int8"]["size_bytes"] < rows["tflite_float"]["size_bytes"]


def test_keras_int8_quantizes_the_head_on_a_copy(compressed):
    _, _, classifier, _, result = compressed
    assert _rows(result)["keras_int8"]["quantized_layers"] == ["head_logits"]
    head_kernel = classifier.head.get_layer("head_logits").kernel
    assert head_kernel.dtype == "float32"  # the trained classifier is not quantized


def test_pruning_leaves_the_trained_classifier_alone(compressed):
    _, _, classifier, float_weights, result = compressed
    for before, weight in zip(float_weights, classifier.weights):
        np.testing.assert_array_equal(before, weight.numpy())
    pruning = result["pruning"]
    assert pruning["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert pruning["variables_gzip_bytes"] < pruning["float_variables_gzip_bytes"]


def _row(variant, accuracy):
    return {"variant": variant, "accuracy": accuracy}


def test_a_variant_that_loses_accuracy_is_flagged():
    rows = [_row("saved_model", 0.9), _row("same", 0.9), _row("worse", 0.88),
            _row("better", 0.95)]
    flagged = {r["variant"]: r["flagged"] for r in compression.flag_drops(rows, 0.0)}
    assert flagged == {"saved_model": False, "same": False, "worse": True, "better": False}
    assert rows[2]["accuracy_drop"] == pytest.approx(0.02)
    assert not compression.flag_drops(rows, 0.02)[2]["flagged"]  # exactly at the tolerance
    assert compression.flag_drops(rows, 0.019)[2]["flagged"]


def test_a_broken_variant_is_flagged_end_to_end(compressed):
    cfg, data, _, _, result = compressed
    tflite_row = _rows(result)["tflite_float"]
    good = compression.tflite_candidate(tflite_row["path"], "float")
    # Every prediction moved to the next class: a real accuracy loss, measured as usual.
    broken = compression.Candidate("broken", good.runtime, good.path,
                                   lambda images: np.roll(good.predict(images), 1, axis=1))
    images = next(iter(data.test))[0].numpy()
    rows = [compression.measure(c, data.test, data.class_names, images) for c in (good, broken)]
    flagged = compression.flag_drops(rows, 0.0)
    assert rows[1]["accuracy"] == 0.0 and [r["flagged"] for r in flagged] == [False, True]


def test_the_report_table_shows_the_real_result(compressed):
    result = compressed[-1]
    header, rows = compression_table.table(result)
    assert [row[0] for row in rows] == [v["variant"] for v in result["variants"]]
    assert all(len(row) == len(header) for row in rows)
    kernels = len(result["pruning"]["pruned_kernels"])  # top block, hub head, logits
    assert f"Pruned {kernels} kernels" in compression_table.markdown_table(result)


def test_nothing_requested_does_nothing(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    assert not compression.requested(cfg)
    assert compression.compress_and_evaluate(None, None, cfg, "") is None
    assert not os.path.exists(tmp_path / "compression.json")


def test_without_an_evaluation_split_it_is_one_line(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      export_tflite=["float"])
    no_splits = types.SimpleNamespace(test=None, validation=None)
    with pytest.raises(DataError, match="there is neither"):
        compression.compress_and_evaluate(None, no_splits, cfg, "")


def test_compressed_models_that_cannot_be_built_are_skipped_with_the_reason(compressed, monkeypatch):
    cfg, data, classifier, _, _ = compressed

    def refuse(*args):
        raise RuntimeError("calibration failed\nat node 2")
    monkeypatch.setattr(compression.tflite, "write_model", refuse)
    monkeypatch.setattr(compression.onnx_export, "write_model", refuse)
    features = keras.Input((16,))
    no_dense = keras.Model(features, keras.layers.Activation("softmax")(features), name="head")
    bare = model_lib.TransferClassifier(classifier.backbone, no_dense, cfg.data.image_size)
    skipped = []
    assert list(compression._candidates(bare, data, cfg, skipped)) == []
    assert skipped == [{"variant": f"tflite_{v}", "reason": "calibration failed"}
                       for v in TFLITE] + [{"variant": "onnx", "reason": "calibration failed"},
                                           {"variant": "keras_int8",
                                            "reason": "no Dense or EinsumDense layer to "
                                                      "quantize"}]
