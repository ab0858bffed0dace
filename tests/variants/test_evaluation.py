import os

import numpy as np
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib
from tftransfer.report import comparison
from tftransfer.train import training as train_lib
from tftransfer.variants import evaluation as variants


def test_adversarial_variant_is_evaluated_and_exported(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, epochs=1,
                      head_epochs=1, adversarial="fgsm", adversarial_epochs=1,
                      robustness_eval=True, robustness_epsilons=[0.02],
                      robustness_pgd_steps=2)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    classifier = model_lib.build_model(cfg, data.num_classes)
    train_lib.train(classifier, classifier.backbone, data, cfg)
    block = variants.adversarial_variant(classifier, data, cfg)
    assert (block["attack"], block["epochs"], len(block["training"]["phases"])) == ("fgsm", 1, 1)
    assert block["export_dir"] == os.path.join(cfg.output_dir, "adversarial", "saved_model", "1")
    assert {"validation", "test", "robustness", "performance"} <= set(block)
    assert [a["epsilon"] for a in block["robustness"]["attacks"]] == [0.01, 0.02] * 2
    rows = comparison.rows({"test": {"accuracy": 0.5}, "adversarial": block})
    assert rows[1]["robust_accuracy"] == block["robustness"]["robust_accuracy"]
    assert np.isfinite(rows[1]["latency_ms_p50"])
