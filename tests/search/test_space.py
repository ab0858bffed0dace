import json

import pytest

from tftransfer.config.run_config import ConfigError
from tftransfer.search import space as ss
from tftransfer.search.hyperrule import prior


def test_default_space_follows_the_prior_and_flags():
    space = ss.default_space(prior(500, 3), augment=False, batch_size=32)
    assert space["fine_tune_depth"] == ss.Choice((0, 1, 2, -1))  # small data may still fine-tune all
    assert space["augment"] == ss.Fixed(False) and space["batch_size"] == ss.Fixed(32)
    assert set(space) == (set(ss.SEARCHABLE) - {"image_size", "class_weight"}
                          | {ss.SGD_LEARNING_RATE})
    adam, sgd = space["learning_rate"], space[ss.SGD_LEARNING_RATE]
    assert (sgd.min, sgd.max) == pytest.approx((adam.min * ss.SGD_LR_SCALE,
                                                adam.max * ss.SGD_LR_SCALE))


@pytest.mark.parametrize("own, native, sizes", [
    (28, 224, (224, 32, 64, 128)),   # small images: their own size, doubling, and native
    (8, 224, (224, 32, 64, 128)),    # never below SMALLEST_IMAGE_SIZE
    (100, 224, (224, 128)),          # rounded up to a multiple of 32
    (64, 224, (224, 64, 128)),
    (200, 224, (224,)),              # near or above native: nothing else to try
    (640, 224, (224,)),
    (28, 96, (96, 32, 64)),
])
def test_resolutions_start_native_then_go_up_from_the_data_s_own_size(own, native, sizes):
    assert ss.resolutions(own, native) == sizes


def test_the_resolution_is_searched_only_with_more_than_one_size():
    assert "image_size" not in ss.default_space(prior(500, 3), False, 32, (224,))
    space = ss.build_space(prior(500, 3), False, 32, {}, (224, 32, 64))
    assert space["image_size"] == ss.Choice((224, 32, 64))
    assert ss.start_at_flags(space, {"image_size": 224})["image_size"].values[0] == 224


def test_class_weights_are_searched_on_imbalanced_training_data_only():
    assert "class_weight" not in ss.default_space(prior(500, 3), False, 32)
    space = ss.build_space(prior(500, 3), False, 32, {}, imbalanced=True)
    assert space["class_weight"] == ss.Choice(("none", "balanced"))
    started = ss.start_at_flags(space, {"class_weight": "balanced"})
    assert started["class_weight"].values == ("balanced", "none")


@pytest.mark.parametrize("bad", [[32, 4.5], [4], "x"])
def test_image_size_overrides_must_be_pixels(tmp_path, bad):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"image_size": bad}))
    with pytest.raises(ConfigError, match="image_size values"):
        ss.load_overrides(str(path))


@pytest.mark.parametrize("overrides, learning_rates", [
    ({}, {"learning_rate", ss.SGD_LEARNING_RATE}),
    ({"optimizer": ["adam", "adamw"]}, {"learning_rate"}),
    ({"optimizer": "sgd"}, {ss.SGD_LEARNING_RATE}),
    ({"learning_rate": [1e-3]}, {"learning_rate"}),  # one rate set for every optimizer
    ({"learning_rate": [1e-3], ss.SGD_LEARNING_RATE: [1e-2]},
     {"learning_rate", ss.SGD_LEARNING_RATE}),
])
def test_sgd_keeps_its_own_learning_rate_only_where_it_applies(overrides, learning_rates):
    parsed = {name: ss._parse_entry(name, spec) for name, spec in overrides.items()}
    space = ss.build_space(prior(5000, 8), False, 32, parsed)
    assert {"learning_rate", ss.SGD_LEARNING_RATE} & set(space) == learning_rates


def test_each_trial_gets_the_learning_rate_of_its_optimizer():
    import keras_tuner as kt

    space = ss.build_space(prior(5000, 8), False, 32, {})
    adam_lr, sgd_lr = space["learning_rate"], space[ss.SGD_LEARNING_RATE]
    oracle = kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=40, seed=3)
    hp = kt.HyperParameters()
    ss.declare_all(hp, space)
    oracle.hyperparameters = hp
    seen = set()
    for i in range(40):
        values = oracle.populate_space(str(i))["values"]
        trial_hp = hp.copy()
        trial_hp.values = values
        active = ss.declare_all(trial_hp, space)
        flags = ss.to_flag_values(active)
        seen.add(flags["optimizer"])
        if flags["optimizer"] == "sgd":
            assert "learning_rate" not in active
            assert sgd_lr.min <= flags["learning_rate"] <= sgd_lr.max
        else:
            assert ss.SGD_LEARNING_RATE not in active
            assert adam_lr.min <= flags["learning_rate"] <= adam_lr.max
        assert ss.SGD_LEARNING_RATE not in flags
    assert seen == {"adam", "sgd"}


def test_overrides_from_json(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"fine_tune_depth": [0, 2], "dropout": {"min": 0.1, "max": 0.2},
                                "learning_rate": {"min": 1e-4, "max": 1e-2, "log": True},
                                "optimizer": "sgd", "l2": {"min": 0, "max": 1e-3, "start": 0}}))
    parsed = ss.load_overrides(str(path))
    assert parsed["l2"] == ss.Range(0.0, 1e-3, start=0.0)
    del parsed["l2"]
    assert parsed == {"fine_tune_depth": ss.Choice((0, 2)), "dropout": ss.Range(0.1, 0.2),
                      "learning_rate": ss.Range(1e-4, 1e-2, True), "optimizer": ss.Fixed("sgd")}


@pytest.mark.parametrize("content, message", [
    ({"warp_speed": [1]}, "unknown hyperparameter"),
    ({"dropout": {"min": 0.5, "max": 0.1}}, "range needs min <= max"),
    ({"dropout": {"min": 0.1, "max": 0.5, "start": 0.6}}, "start between them"),
    ({"dropout": {"min": "low", "max": 0.5}}, "range needs min <= max"),
    ({"optimizer": ["adam", "lion"]}, "optimizer choices"),
    ({"dropout": []}, "empty choice list"),
    ({"class_weight": ["none", "inverse"]}, "class_weight values"),
    ({"augmentations": ["flip", "flip,mixin"]}, "augmentations values"),
    ({"augmentations": [["flip"]]}, "augmentations values"),
])
def test_bad_overrides_name_the_flag(tmp_path, content, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=f"--search_space: .*{message}"):
        ss.load_overrides(str(path))


def test_head_units_strings_become_tuples():
    assert ss.to_flag_values({"head_units": "512,256"})["head_units"] == (512, 256)
    assert ss.to_flag_values({"head_units": ""})["head_units"] == ()


def test_opt_in_entries_are_searched_only_when_named(tmp_path):
    from tftransfer.config.run_config import from_flat
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"layer_lr_decay": [1.0, 0.7], "ema": [False, True]}))
    parsed = ss.load_overrides(str(path))
    assert parsed == {"layer_lr_decay": ss.Choice((1.0, 0.7)), "ema": ss.Choice((False, True))}
    assert not set(ss.OPT_IN) & set(ss.default_space(prior(500, 3), False, 32))
    trial = from_flat(ss.to_flag_values({"layer_lr_decay": 0.7, "ema": True}))
    assert trial.train.layer_lr_decay == 0.7 and trial.train.ema


def test_augmentations_are_an_opt_in_dimension_of_name_lists(tmp_path):
    from tftransfer.config.run_config import from_flat, to_flat
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"augmentations": ["flip,crop", "flip,crop,mixup",
                                                  "randaugment,cutmix"]}))
    parsed = ss.load_overrides(str(path))
    assert parsed["augmentations"].values[1] == "flip,crop,mixup"
    trial = from_flat(ss.to_flag_values({"augmentations": "randaugment,cutmix"}))
    assert trial.data.augmentations == ("randaugment", "cutmix")
    flat = to_flat(from_flat({"augmentations": ("flip", "crop", "mixup")}))
    started = ss.start_at_flags(parsed, flat)
    assert started["augmentations"].values[0] == "flip,crop,mixup"


def test_a_point_is_held_only_where_every_value_is_one_the_space_takes():
    space = ss.build_space(prior(500, 16), True, 32, {}, image_sizes=(224, 32, 64))
    assert ss.holds(space, {"image_size": 32, "fine_tune_depth": -1, "augment": False,
                            "fine_tune_lr_factor": 0.5})
    assert not ss.holds(space, {"image_size": 48})              # not a searched size
    assert not ss.holds(space, {"fine_tune_lr_factor": 0.9})    # outside the range
    assert not ss.holds(space, {"batch_size": 64})              # fixed at 32
    assert not ss.holds(space, {"ema": True})                   # not in the space
    no_augment = ss.build_space(prior(500, 16), False, 32, {}, image_sizes=(224, 32))
    assert not ss.holds(no_augment, {"augment": True})
