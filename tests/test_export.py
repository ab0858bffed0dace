import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from conftest import make_config
from tftransfer import data as data_lib, export, model as model_lib

HERE = os.path.dirname(__file__)


def serve_in_fresh_process(export_dir, files, tmp_path):
    out = str(tmp_path / "served.npz")
    subprocess.run([sys.executable, os.path.join(HERE, "serve_in_fresh_process.py"), export_dir,
                    out, *files], check=True, capture_output=True, timeout=300)
    return np.load(out)


def _classifier(cfg, num_classes=3):
    backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
    head = model_lib.build_head(width, num_classes, cfg.head)
    return backbone, model_lib.build_classifier(backbone, head, cfg.data.image_size)


def test_serving_signature_contract_and_fresh_process_agreement(tmp_path, tiny_hub_dir,
                                                                color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    backbone, classifier = _classifier(cfg)
    names = ["red", "green", "blue"]
    export_dir = export.export_saved_model(classifier, names, 24, backbone.module,
                                           str(tmp_path / "saved_model"))
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.name == "images" and spec.dtype == tf.string and spec.shape.as_list() == [None]
    assert set(signature.structured_outputs) == {"probabilities", "classes"}

    files = [os.path.join(color_folder, f"class_{c}", f"{i}.{ext}")
             for c in range(3) for i, ext in ((1, "png"), (2, "jpg"))]
    served = serve_in_fresh_process(export_dir, files, tmp_path)
    images = np.stack([data_lib.preprocess_encoded(tf.io.read_file(f), 24) for f in files])
    expected = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert list(served["classes"]) == [names[i] for i in expected.argmax(axis=1)]


def test_export_replaces_atomically_and_leaves_no_staging_folder(tmp_path, tiny_hub_dir,
                                                                 color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    backbone, classifier = _classifier(cfg)
    target = str(tmp_path / "export" / "saved_model")
    os.makedirs(os.path.dirname(target))
    export.export_saved_model(classifier, ["a", "b", "c"], 24, backbone.module, target)
    first = os.path.getmtime(os.path.join(target, "saved_model.pb"))
    export.export_saved_model(classifier, ["a", "b", "c"], 24, backbone.module, target)
    assert os.listdir(os.path.dirname(target)) == ["saved_model"]
    assert os.path.getmtime(os.path.join(target, "saved_model.pb")) >= first
