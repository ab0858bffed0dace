import os
import subprocess
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config, serve_in_fresh_process
from tensorflow_serving.apis import prediction_log_pb2

from tftransfer.config.errors import DataError
from tftransfer.data import pipeline as data_lib, preprocess
from tftransfer.export import (
    layout as export_layout,
    saved_model as export,
    serving_warmup as warmup,
)
from tftransfer.evaluate import temperature as temperature_fit
from tftransfer.model import classifier as model_lib, temperature_layer as temperature

WARMUP_COUNT = 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_hub_dir, color_folder):
    """An untrained tiny classifier on the colour folder, exported with warm-up requests."""
    root = tmp_path_factory.mktemp("export")
    cfg = make_config(root, dataset=color_folder, hub_handle=tiny_hub_dir)
    data = data_lib.load_data(cfg.data, cfg.seed, str(root / "cache"))
    classifier = model_lib.build_model(cfg, data.num_classes)
    backbone = classifier.backbone
    version_dir = export.export_saved_model(
        classifier, data.class_names, cfg.data.image_size, backbone.module,
        str(root / "saved_model"), warmup_images=warmup.validation_images(data, WARMUP_COUNT))
    return types.SimpleNamespace(data=data, backbone=backbone, classifier=classifier,
                                 version_dir=version_dir, base=str(root / "saved_model"))


@pytest.mark.e2e
def test_both_signatures_reload_in_a_fresh_process_and_agree_with_keras(exported, color_folder,
                                                                        tmp_path):
    files = [os.path.join(color_folder, f"class_{c}", f"{i}.{ext}")
             for c in range(3) for i, ext in ((1, "png"), (2, "jpg"))]
    encoded = [tf.io.read_file(f) for f in files]
    pixels = np.stack([tf.io.decode_image(e, channels=3).numpy() for e in encoded])
    assert pixels.shape == (6, 36, 44, 3)  # not the model's 24 x 24
    served = serve_in_fresh_process(exported.version_dir, files, tmp_path, pixels=pixels)

    expected = exported.classifier.predict(
        np.stack([preprocess.preprocess_encoded(e, 24) for e in encoded]), verbose=0)
    assert np.ptp(expected, axis=0).max() > 1e-3  # the images really get different outputs
    names = export_layout.read_class_names(exported.version_dir)
    assert names == exported.data.class_names == ["class_0", "class_1", "class_2"]
    for probabilities, classes in ((served["probabilities"], served["classes"]),
                                   (served["pixel_probabilities"], served["pixel_classes"])):
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        assert list(classes) == [names[i] for i in expected.argmax(axis=1)]


def test_signature_contracts(exported):
    signatures = tf.saved_model.load(exported.version_dir).signatures
    assert set(signatures) == {"serving_default", "serving_pixels"}
    for key, name, dtype, shape in (("serving_default", "images", tf.string, [None]),
                                    ("serving_pixels", "pixels", tf.uint8, [None, None, None, 3])):
        (spec,) = signatures[key].structured_input_signature[1].values()
        assert (spec.name, spec.dtype, spec.shape.as_list()) == (name, dtype, shape)
        outputs = signatures[key].structured_outputs
        assert set(outputs) == {"probabilities", "classes"}
        assert outputs["probabilities"].dtype == tf.float32
        assert outputs["classes"].dtype == tf.string


@pytest.mark.e2e
def test_saved_model_cli_lists_both_signatures(exported):
    shown = subprocess.run(["saved_model_cli", "show", "--dir", exported.version_dir, "--all"],
                           capture_output=True, text=True, timeout=300, check=True).stdout
    default = shown[shown.index("signature_def['serving_default']"):
                    shown.index("signature_def['serving_pixels']")]
    pixels = shown[shown.index("signature_def['serving_pixels']"):]
    assert "inputs['images']" in default and "DT_STRING" in default
    assert "inputs['pixels']" in pixels and "DT_UINT8" in pixels
    assert "shape: (-1, -1, -1, 3)" in pixels
    for signature in (default, pixels):
        assert "outputs['probabilities']" in signature and "shape: (-1, 3)" in signature
        assert "outputs['classes']" in signature
        assert "Method name is: tensorflow/serving/predict" in signature


def test_warmup_requests_are_validation_images_that_the_export_serves(exported):
    path = os.path.join(exported.version_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]
    assert len(logs) == WARMUP_COUNT
    serve = tf.saved_model.load(exported.version_dir).signatures["serving_default"]
    for log, encoded in zip(logs, warmup.validation_images(exported.data, WARMUP_COUNT)):
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == ["images"]
        assert list(tf.make_ndarray(request.inputs["images"])) == [encoded]
        outputs = serve(**{name: tf.make_ndarray(tensor)
                           for name, tensor in request.inputs.items()})
        np.testing.assert_allclose(outputs["probabilities"].numpy().sum(axis=-1), 1, atol=1e-5)
        assert outputs["classes"].numpy()[0].decode() in exported.data.class_names


def _export(exported, base, **kwargs):
    return export.export_saved_model(exported.classifier, exported.data.class_names, 24,
                                     exported.backbone.module, base, **kwargs)


def test_versions_increment_explicit_ones_are_honoured_and_replaced_atomically(exported,
                                                                               tmp_path):
    base = str(tmp_path / "saved_model")
    assert _export(exported, base) == os.path.join(base, "1")
    assert _export(exported, base, version=5) == os.path.join(base, "5")
    assert _export(exported, base) == os.path.join(base, "6")
    before = os.stat(os.path.join(base, "5", "saved_model.pb")).st_ino
    assert _export(exported, base, version=5) == os.path.join(base, "5")
    assert os.stat(os.path.join(base, "5", "saved_model.pb")).st_ino != before
    assert sorted(os.listdir(base)) == ["1", "5", "6"]  # no hidden staging or retired folders
    for version in ("1", "5", "6"):  # what TF Serving's file-system source expects
        for part in ("saved_model.pb", "variables/variables.index", "assets/labels.txt"):
            assert os.path.isfile(os.path.join(base, version, part)), (version, part)
    assert export_layout.resolve_saved_model(base) == os.path.join(base, "6")
    assert export_layout.resolve_saved_model(os.path.join(base, "5")) == os.path.join(base, "5")


def test_a_failed_export_leaves_no_visible_or_hidden_folder(exported, tmp_path, monkeypatch):
    base = str(tmp_path / "saved_model")
    _export(exported, base)

    def fail(*_):
        raise OSError("disk full")
    monkeypatch.setattr(warmup, "write_warmup_requests", fail)
    with pytest.raises(OSError, match="disk full"):
        _export(exported, base, version=1, warmup_images=[b"x"])
    assert os.listdir(base) == ["1"]
    assert not os.path.exists(os.path.join(base, "1", "assets.extra"))  # the old version 1


def test_class_names_with_line_breaks_are_refused(exported, tmp_path):
    with pytest.raises(DataError, match="line breaks"):
        export.export_saved_model(exported.classifier, ["a", "b\nc", "d"], 24,
                                  exported.backbone.module, str(tmp_path / "saved_model"))
    assert os.listdir(tmp_path / "saved_model") == []


def test_the_export_holds_each_model_weight_once_and_no_optimizer_slots(exported, tmp_path):
    classifier = exported.classifier
    classifier.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    classifier.optimizer.build(classifier.trainable_variables)  # slots exist, as after fit()
    version_dir = _export(exported, str(tmp_path / "saved_model"))
    saved = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    saved_sizes = sorted(int(np.prod(shape)) for name, shape
                         in saved.get_variable_to_shape_map().items()
                         if name.endswith("VARIABLE_VALUE"))
    model_sizes = sorted(int(np.prod(v.shape)) for v in classifier.variables)
    assert saved_sizes == model_sizes  # no Adam moments, no second copy of the backbone


def test_both_signatures_return_the_temperature_scaled_probabilities(exported, tmp_path):
    """--calibrate: the export of a temperature-scaled classifier serves its probabilities."""
    logits = exported.classifier.head.get_layer(model_lib.LOGITS)
    original_kernel = logits.kernel.numpy()
    logits.kernel.assign(original_kernel * 10.0)  # confident, so the temperature shows
    try:
        scaled = temperature.with_temperature(exported.classifier, 4.0)
        version_dir = export.export_saved_model(scaled, exported.data.class_names, 24,
                                                exported.backbone.module, str(tmp_path))
        signatures = tf.saved_model.load(version_dir).signatures
        pixels = np.random.default_rng(1).integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
        images = np.stack([preprocess.preprocess_pixels(p, 24) for p in pixels])
        original = exported.classifier.predict(images, verbose=0)
        expected = scaled.predict(images, verbose=0)
        served = signatures["serving_pixels"](pixels=tf.constant(pixels))
        encoded = [tf.io.encode_png(p).numpy() for p in pixels]
        served_bytes = signatures["serving_default"](images=tf.constant(encoded))
    finally:
        logits.kernel.assign(original_kernel)
    assert np.abs(expected - original).max() > 1e-3  # the temperature changes them
    np.testing.assert_allclose(expected, temperature_fit.apply_temperature(original, 4.0),
                               atol=1e-5)
    for outputs in (served, served_bytes):
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
        assert [c.decode() for c in outputs["classes"].numpy()] == [
            exported.data.class_names[i] for i in original.argmax(axis=1)]


def test_an_export_with_flip_tta_serves_the_averaged_probabilities(exported, tmp_path):
    """--export_tta: both signatures average the image and its mirror."""
    from tftransfer.model import tta

    averaged = tta.with_tta(exported.classifier, "flip")
    version_dir = export.export_saved_model(averaged, exported.data.class_names, 24,
                                            exported.backbone.module, str(tmp_path))
    signatures = tf.saved_model.load(version_dir).signatures
    pixels = np.random.default_rng(2).integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    images = np.stack([preprocess.preprocess_pixels(p, 24) for p in pixels])
    plain = exported.classifier.predict(images, verbose=0)
    mirrored = exported.classifier.predict(images[:, :, ::-1], verbose=0)
    expected = (plain + mirrored) / 2
    assert np.abs(expected - plain).max() > 1e-4  # the tiny backbone is not mirror-invariant
    served = signatures["serving_pixels"](pixels=tf.constant(pixels))
    encoded = [tf.io.encode_png(p).numpy() for p in pixels]
    served_bytes = signatures["serving_default"](images=tf.constant(encoded))
    for outputs in (served, served_bytes):
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
        assert [c.decode() for c in outputs["classes"].numpy()] == [
            exported.data.class_names[i] for i in expected.argmax(axis=1)]
    saved = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    assert len([name for name in saved.get_variable_to_shape_map()
                if name.endswith("VARIABLE_VALUE")]) == len(exported.classifier.variables)
