import numpy as np
from conftest import make_config

from tftransfer.export import measure, saved_model as export
from tftransfer.model import classifier as model_lib


def test_measures_both_models_and_sizes(tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    backbone, width = model_lib.build_backbone(cfg.backbone, 24)
    classifier = model_lib.TransferClassifier(backbone, model_lib.build_head(width, 3, cfg.head),
                                              24)
    export_dir = export.export_saved_model(classifier, ["a", "b", "c"], 24, backbone.module,
                                           str(tmp_path / "saved_model"))
    perf = measure.performance_block(classifier, export_dir, 24, serving_batch=8, repeats=10)
    assert set(perf) == {"device", "keras_model", "saved_model", "parameters",
                         "export_megabytes", "peak_host_memory_megabytes"}
    for speed in (perf["keras_model"], perf["saved_model"]):
        assert 0 < speed["latency_ms_p50"] <= speed["latency_ms_p95"]
        assert speed["throughput_images_per_s"] > 0 and speed["serving_batch"] == 8
    head_params = width * 3 + 3
    assert perf["parameters"]["trainable"] == head_params  # backbone frozen at depth 0
    assert perf["parameters"]["total"] == head_params + sum(
        int(np.prod(v.shape)) for v in backbone.module.variables)
    assert perf["export_megabytes"] > 0
