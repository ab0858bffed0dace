import json

import pytest

from tftransfer import search_space as ss
from tftransfer.config import ConfigError
from tftransfer.hyperrule import prior


def test_default_space_follows_the_prior_and_flags():
    space = ss.default_space(prior(500, 3), augment=False, batch_size=32)
    assert space["fine_tune_depth"] == ss.Choice((0, 1, 2))
    assert space["augment"] == ss.Fixed(False) and space["batch_size"] == ss.Fixed(32)
    assert set(space) == set(ss.SEARCHABLE)


def test_overrides_from_json(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"fine_tune_depth": [0, 2], "dropout": {"min": 0.1, "max": 0.2},
                                "learning_rate": {"min": 1e-4, "max": 1e-2, "log": True},
                                "optimizer": "sgd"}))
    parsed = ss.load_overrides(str(path))
    assert parsed == {"fine_tune_depth": ss.Choice((0, 2)), "dropout": ss.Range(0.1, 0.2),
                      "learning_rate": ss.Range(1e-4, 1e-2, True), "optimizer": ss.Fixed("sgd")}


@pytest.mark.parametrize("content, message", [
    ({"warp_speed": [1]}, "unknown hyperparameter"),
    ({"dropout": {"min": 0.5, "max": 0.1}}, "range needs min <= max"),
    ({"optimizer": ["adam", "lion"]}, "optimizer choices"),
    ({"dropout": []}, "empty choice list"),
])
def test_bad_overrides_name_the_flag(tmp_path, content, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=f"--search_space: .*{message}"):
        ss.load_overrides(str(path))


def test_head_units_strings_become_tuples():
    assert ss.to_flag_values({"head_units": "512,256"})["head_units"] == (512, 256)
    assert ss.to_flag_values({"head_units": ""})["head_units"] == ()
