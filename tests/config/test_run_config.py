import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from conftest import REPO

from tftransfer.cli import flags as flags_lib
from tftransfer.config import run_config as config_lib
from tftransfer.config.run_config import ConfigError, RunConfig
from tftransfer.config.validation import validate
from tftransfer.outputs import files
from tftransfer.search import space as search_space


def _valid(tmp_path, tiny_hub_dir, **changes) -> RunConfig:
    values = {"dataset": "mnist", "hub_handle": tiny_hub_dir, "output_dir": str(tmp_path / "o")}
    values.update(changes)
    return config_lib.from_flat(values)


def test_every_flag_name_is_unique_and_public_names_exist():
    names = [f.name for _, f in config_lib.leaf_fields()]
    assert len(names) == len(set(names))
    for public in ("dataset", "data_dir", "hub_handle", "image_size", "batch_size", "epochs",
                   "fine_tune_depth", "optimizer", "learning_rate", "output_dir", "seed"):
        assert public in names


def test_from_flat_fills_sections_and_keeps_defaults(tmp_path, tiny_hub_dir):
    cfg = _valid(tmp_path, tiny_hub_dir, image_size=64, head_units=[8, 4])
    assert cfg.data.image_size == 64 and cfg.head.head_units == (8, 4)
    assert cfg.train.optimizer == RunConfig().train.optimizer
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3


def test_validate_expands_paths_and_creates_output_dir(tmp_path, tiny_hub_dir):
    cfg = validate(_valid(tmp_path, tiny_hub_dir))
    assert os.path.isdir(cfg.output_dir)
    files.write_config(str(tmp_path / "c.json"), cfg)
    assert json.load(open(tmp_path / "c.json"))["data"]["dataset"] == "mnist"


@pytest.mark.parametrize("changes, flag", [
    ({"image_size": 2}, "image_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"head_epochs": 9, "epochs": 2}, "head_epochs"),
    ({"fine_tune_depth": -2}, "fine_tune_depth"),
    ({"dropout": 1.0}, "dropout"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"block_pattern": "blocks_\\d+"}, "block_pattern"),
    ({"block_pattern": "(unclosed"}, "block_pattern"),
    ({"augmentations": ["flip", "mixin"]}, "augmentations"),
    ({"tta": "five_crop"}, "tta"),
    ({"validation_fraction": 0.6, "test_fraction": 0.5}, "test_fraction"),
    ({"dataset": ""}, "dataset"),
    ({"dataset": "/no/such/folder"}, "dataset"),
    ({"hub_handle": "/no/such/module"}, "hub_handle"),
    ({"adversarial_mix": 0.0}, "adversarial_mix"),
    ({"adversarial_epsilon": 1.5}, "adversarial_epsilon"),
    ({"robustness_epsilons": [0.01, 2.0]}, "robustness_epsilons"),
    ({"ensemble_top_k": 1, "search": "random"}, "ensemble_top_k"),
    ({"ensemble_top_k": 3}, "ensemble_top_k"),  # needs a search
    ({"ensemble_top_k": 4, "search": "random", "max_trials": 3}, "ensemble_top_k"),
    ({"time_budget": "20 minutes"}, "time_budget"),
    ({"time_budget": "0s"}, "time_budget"),
    ({"time_budget": "-5m"}, "time_budget"),
    ({"ema_momentum": 1.0}, "ema_momentum"),
    ({"layer_lr_decay": 0.0}, "layer_lr_decay"),
    ({"layer_lr_decay": 1.5}, "layer_lr_decay"),
    ({"unfreeze_schedule": (6, 2), "fine_tune_depth": -1}, "unfreeze_schedule"),
    ({"unfreeze_schedule": (2, -1, 6), "fine_tune_depth": -1}, "unfreeze_schedule"),
    ({"unfreeze_schedule": (0, 2), "fine_tune_depth": -1}, "unfreeze_schedule"),
    ({"unfreeze_schedule": (2, 6), "fine_tune_depth": 0, "search": "none"},
     "unfreeze_schedule"),
    ({"calibrate": True, "validation_fraction": 0.0}, "calibrate"),
])
def test_bad_values_name_their_flag(tmp_path, tiny_hub_dir, changes, flag):
    with pytest.raises(ConfigError) as info:
        validate(_valid(tmp_path, tiny_hub_dir, **changes))
    assert info.value.flag == flag and str(info.value).startswith(f"--{flag}: ")


@pytest.mark.parametrize("changes, search", [
    ({}, "none"),                                   # no budget: the flags' configuration
    ({"time_budget": "20m"}, config_lib.BUDGET_SEARCH),
    ({"time_budget": "90s", "search": "none"}, "none"),  # an explicit choice is kept
    ({"time_budget": "1.5h", "search": "bayesian"}, "bayesian"),
])
def test_a_budget_turns_the_search_on_unless_told_otherwise(tmp_path, tiny_hub_dir, changes,
                                                            search):
    assert validate(_valid(tmp_path, tiny_hub_dir, **changes)).search.search == search


def test_a_budget_is_refused_on_multi_worker_training(tmp_path, tiny_hub_dir, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match="^--time_budget: is not supported"):
        validate(_valid(tmp_path, tiny_hub_dir, strategy="multi_worker", time_budget="5m"))


@pytest.mark.parametrize("missing, message", [
    ({"tf2onnx"}, "needs the tf2onnx package (pip install tf2onnx)"),
    ({"tf2onnx", "onnxruntime"},
     "needs the tf2onnx and onnxruntime packages (pip install tf2onnx onnxruntime)"),
])
def test_export_onnx_without_its_packages_is_one_line(tmp_path, tiny_hub_dir, monkeypatch,
                                                      missing, message):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else find_spec(name, *a))
    with pytest.raises(ConfigError) as info:
        validate(_valid(tmp_path, tiny_hub_dir, export_onnx=True))
    assert str(info.value) == f"--export_onnx: {message}"
    validate(_valid(tmp_path, tiny_hub_dir))  # not asked for: not needed


def test_unwritable_output_dir_is_a_config_error(tmp_path, tiny_hub_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="--output_dir"):
        validate(_valid(tmp_path, tiny_hub_dir, output_dir=str(blocker / "sub")))


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tftransfer.run", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_cli_bad_value_is_one_line_exit_2_before_tensorflow(tmp_path, tiny_hub_dir):
    result = _run_cli("--dataset=mnist", f"--hub_handle={tiny_hub_dir}",
                      f"--output_dir={tmp_path}", "--batch_size=0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --batch_size: must be >= 1"]


@pytest.mark.e2e
def test_cli_unknown_flag_in_flagfile_is_one_line_exit_2(tmp_path):
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("--dataset=mnist\n--no_such_flag=3\n")
    result = _run_cli(f"--flagfile={flagfile}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_flag" in lines[0] and lines[0].startswith("error: ")


@pytest.mark.e2e
def test_validation_does_not_import_tensorflow(tmp_path, tiny_hub_dir):
    code = ("import sys; from tftransfer.cli import flags;"
            "from tftransfer.config import run_config as config, validation;"
            f"validation.validate(config.from_flat({{'dataset': 'mnist', 'hub_handle': "
            f"{tiny_hub_dir!r}, 'output_dir': {str(tmp_path)!r}}}));"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_to_flat_inverts_from_flat(tmp_path, tiny_hub_dir):
    cfg = _valid(tmp_path, tiny_hub_dir, image_size=64, head_units=[8], search="random")
    assert config_lib.from_flat(config_lib.to_flat(cfg)) == cfg


def test_float_list_flags_parse_to_floats(tmp_path, tiny_hub_dir):
    from absl import flags

    from tftransfer.cli import flags as flags_lib
    values = flags.FlagValues()
    flags_lib.define_flags(values)
    values(["run", "--dataset=mnist", f"--hub_handle={tiny_hub_dir}",
            f"--output_dir={tmp_path}", "--robustness_epsilons=0.004,0.03"])
    assert flags_lib.config_from_flags(values).robustness.robustness_epsilons == (0.004, 0.03)


EXPERIMENTS = sorted(f for f in os.listdir(os.path.join(REPO, "experiments"))
                     if f.endswith(".flags"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_flagfile_validates_and_its_search_space_loads(
        name, tiny_hub_dir, tmp_path, monkeypatch):
    """The shipped flagfiles stay in step with the flags. Their backbones are swapped for
    the tiny local one: validation would look for the real one on disk."""
    monkeypatch.chdir(REPO)  # flagfiles name their files relative to the checkout
    flag_values = flags.FlagValues()
    flags_lib.define_flags(flag_values)
    flag_values(["run", f"--flagfile=experiments/{name}", f"--hub_handle={tiny_hub_dir}",
                 f"--output_dir={tmp_path}"])
    cfg = flags_lib.config_from_flags(flag_values)
    if cfg.search.search_space:
        pinned = search_space.load_overrides(cfg.search.search_space).get("fine_tune_depth")
        if isinstance(pinned, search_space.Fixed):  # trials fine-tune as the final run does
            assert pinned.value == cfg.backbone.fine_tune_depth


def test_learning_rate_takes_a_number_or_find(tmp_path, tiny_hub_dir):
    from absl import flags

    from tftransfer.cli import flags as flags_lib
    values = flags.FlagValues()
    flags_lib.define_flags(values)
    base = ["prog", f"--hub_handle={tiny_hub_dir}", f"--dataset={tmp_path}",
            f"--output_dir={tmp_path / 'out'}"]
    values(base + ["--learning_rate=FIND"])
    assert flags_lib.config_from_flags(values).train.learning_rate == "find"
    values(base + ["--learning_rate=3e-4"])
    assert flags_lib.config_from_flags(values).train.learning_rate == 3e-4
    with pytest.raises(flags.IllegalFlagValueError, match="a number or find"):
        values(base + ["--learning_rate=fast"])
