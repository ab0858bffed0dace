"""--labels_csv's validation (config/multi_label_options.py): each single-label option refused."""
import pytest
from conftest import make_config

from tftransfer.config.run_config import ConfigError

HANDLE = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"  # not loaded


@pytest.fixture()
def csv_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("filename,labels\na.png,x\n")
    return str(path)


def test_a_multi_label_config_validates(tmp_path, csv_file):
    cfg = make_config(tmp_path / "out", dataset=str(tmp_path), labels_csv=csv_file,
                      hub_handle=HANDLE)
    assert cfg.data.labels_csv == csv_file


@pytest.mark.parametrize("values, message", [
    ({"search": "random"}, "--search: is not supported with multi-label data: "
                           "the search's objective is val_accuracy"),
    ({"time_budget": "5m"}, "--time_budget: is not supported"),
    ({"class_weight": "balanced"}, "--class_weight: is not supported"),
    ({"calibrate": True}, "--calibrate: is not supported"),
    ({"robustness_eval": True}, "--robustness_eval: is not supported"),
    ({"adversarial": "fgsm"}, "--adversarial: is not supported"),
    ({"export_tflite": ["float"]}, "--export_tflite: is not supported"),
    ({"keras_int8": True}, "--keras_int8: is not supported"),
    ({"prune_sparsity": 0.5}, "--prune_sparsity: is not supported"),
    ({"compare_scratch": True}, "--compare_scratch: is not supported"),
    ({"tta": "flip"}, "--tta: is not supported"),
    ({"export_tta": True}, "--export_tta: is not supported"),
    ({"augmentations": ["flip", "mixup"]}, "--augmentations: is not supported"),
    ({"learning_rate": "find"}, "--learning_rate: is not supported"),
    ({"labels_csv": "/no/such.csv"}, "--labels_csv: no such file: /no/such.csv"),
    ({"dataset": "cifar10"}, "--labels_csv: needs --dataset to be the folder"),
])
def test_single_label_options_are_one_line_config_errors(tmp_path, csv_file, values, message):
    flags = {"dataset": str(tmp_path), "labels_csv": csv_file, "hub_handle": HANDLE,
             **values}
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path / "out", **flags)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
