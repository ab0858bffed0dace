import json
import os

import psutil
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.config.errors import TrainingDiverged, UserError
from tftransfer.data import pipeline as data_lib
from tftransfer.distribute import strategy as distribute
from tftransfer.model import backbone as backbone_lib
from tftransfer.search import tuners, tuning as search
from tftransfer.train import training as train_lib


def _search_config(tmp_path, hub, folder, space=None, **values):
    if space is not None:
        path = tmp_path / "space.json"
        path.write_text(json.dumps(space))
        values["search_space"] = str(path)
    defaults = dict(dataset=folder, hub_handle=hub, search="random", max_trials=3,
                    search_epochs=1, batch_size=16)
    return make_config(tmp_path / "run", **{**defaults, **values})


def _search(cfg, strategy_name="auto"):
    strategy = distribute.make_strategy(strategy_name, cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    return search.run_search(cfg, data, strategy)


class _Counter:
    def __init__(self, monkeypatch, owner, name):
        self.calls, original = 0, getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, counted)


@pytest.fixture(scope="module")
def random_search(tmp_path_factory, tiny_hub_dir, color_folder):
    """A 3-trial random search over the default space, for the tests that only read it."""
    cfg = _search_config(tmp_path_factory.mktemp("random"), tiny_hub_dir, color_folder,
                         max_trials=3)
    return cfg, _search(cfg)


def test_space_holds_the_depths_the_backbone_has(random_search):
    cfg, result = random_search
    saved = json.load(open(os.path.join(cfg.output_dir, "search.json")))
    assert "fine_tune_depth=Choice(values=(0, 1, 2, -1))" in saved["space"]  # 3 blocks, 72 images
    assert result.best_values["fine_tune_depth"] in (0, 1, 2, -1)


def test_depths_the_backbone_lacks_are_refused(tmp_path, tiny_hub_dir, color_folder):
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, space={"fine_tune_depth": [0, 7]})
    with pytest.raises(UserError, match=r"fine_tune_depth \[7\] outside -1..3"):
        _search(cfg)


def test_frozen_trials_reuse_cached_features(tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    loads = _Counter(monkeypatch, backbone_lib, "load_module")
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=4,
                         space={"fine_tune_depth": [0]})
    _search(cfg)
    assert loads.calls == 2  # extraction, and one load shared by all trials: none per trial
    features = os.path.join(cfg.output_dir, "features")
    stored = [f for d in os.listdir(features) for f in os.listdir(os.path.join(features, d))]
    assert sorted(f for f in stored if not f.endswith(".lock")) == [
        "train.npz", "validation.npz"]
    saved = json.load(open(os.path.join(cfg.output_dir, "search.json")))
    assert [t["status"] for t in saved["trials"]] == ["COMPLETED"] * 4


def test_trials_at_other_resolutions_train_on_their_own_inputs(tmp_path, tiny_hub_dir,
                                                                color_folder, monkeypatch):
    loads = _Counter(monkeypatch, backbone_lib, "load_module")
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=6,
                         space={"fine_tune_depth": [0, 1], "image_size": [24, 16]})
    strategy = distribute.make_strategy("auto", cfg.data.batch_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "", strategy.num_replicas_in_sync)
    result = search.run_search(cfg, data, strategy)
    sizes = {t["hyperparameters"]["image_size"] for t in result.trials
             if t["status"] == "COMPLETED"}
    assert sizes == {24, 16}
    assert len(os.listdir(os.path.join(cfg.output_dir, "features"))) == 4  # per split and size
    # One load extracts the run's own size; another the second size; one serves all trials.
    assert loads.calls == 3
    final = search.apply_values(cfg, result.best_values)
    assert final.data.image_size == result.best_values["image_size"]


@pytest.mark.e2e  # interrupted like a kill, then resumed
def test_resume_repeats_no_finished_trial(tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=4,
                         space={"fine_tune_depth": [0]})
    fits = {"n": 0}
    original_fit = search.TransferHyperModel.fit

    def interrupted_fit(self, *args, **kwargs):
        fits["n"] += 1
        if fits["n"] == 3:
            raise KeyboardInterrupt  # like Ctrl-C or a kill in the middle of trial 3
        return original_fit(self, *args, **kwargs)
    monkeypatch.setattr(search.TransferHyperModel, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        _search(cfg)
    monkeypatch.setattr(search.TransferHyperModel, "fit", original_fit)
    resumed = _Counter(monkeypatch, search.TransferHyperModel, "fit")
    result = _search(cfg)
    assert resumed.calls == 2  # the interrupted trial and the fourth; not the two finished
    ids = [t["trial_id"] for t in result.trials]
    assert len(ids) == len(set(ids)) == 4
    assert all(t["status"] == "COMPLETED" for t in result.trials)


@pytest.mark.e2e  # interrupted like a kill, then resumed
def test_a_kill_while_the_tuner_saves_leaves_every_state_file_whole(
        tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    """KerasTuner writes oracle.json, trial.json and tuner0.json in place; tftransfer's
    tuners stage and rename them, so a kill in the middle of a save keeps the last whole
    file, and the rerun resumes."""
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=3,
                         space={"fine_tune_depth": [0]})
    renames, real_replace = [], os.replace
    state_files = ("oracle.json", "trial.json", "tuner0.json")

    def killed_while_saving_the_tuner(source, target):
        if os.path.basename(target) in state_files:
            renames.append(os.path.basename(target))
            if renames[-1] == "tuner0.json":  # after the first trial's oracle saves
                raise KeyboardInterrupt  # the staged file is written, not yet renamed
        real_replace(source, target)
    monkeypatch.setattr(os, "replace", killed_while_saving_the_tuner)
    with pytest.raises(KeyboardInterrupt):
        _search(cfg)
    assert {"oracle.json", "trial.json"} <= set(renames)
    monkeypatch.setattr(os, "replace", real_replace)
    project = os.path.join(cfg.output_dir, "search")
    saved = [os.path.join(folder, name) for folder, _, names in os.walk(project)
             for name in names if name in state_files]
    for path in saved:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    result = _search(cfg)
    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 3


def test_a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on(
        tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    calls = {"n": 0}
    original = train_lib.run_phases

    def first_diverges(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TrainingDiverged("training diverged in phase 'head' (loss nan)")
        return original(*args, **kwargs)
    monkeypatch.setattr(train_lib, "run_phases", first_diverges)
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=3,
                         space={"fine_tune_depth": [0]})
    result = _search(cfg)
    statuses = sorted(t["status"] for t in result.trials)
    assert statuses == ["COMPLETED", "COMPLETED", "FAILED"]
    failed = next(t for t in result.trials if t["status"] == "FAILED")
    assert "diverged" in failed["message"][0]


def test_search_under_mirrored_strategy_with_two_replicas(tmp_path, tiny_hub_dir,
                                                         color_folder):
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, search="hyperband",
                         search_epochs=2, space={"fine_tune_depth": [0, 1]})
    result = _search(cfg, "mirrored")
    assert result.trials and all(t["status"] == "COMPLETED" for t in result.trials)
    # The first trial, the starting point, is frozen without augmentation: it trains on
    # cached features, whose validation split (9 images here, 5 + 4 on two replicas)
    # needs its own replica-safe batch size.
    first = next(t["hyperparameters"] for t in result.trials if t["trial_id"] == "0000")
    assert (first["fine_tune_depth"], first["augment"]) == (0, 0)


@pytest.mark.e2e  # two whole searches compared
def test_a_hyperband_promotion_scores_what_a_straight_run_of_its_values_scores(
        tmp_path, tiny_hub_dir, color_folder):
    """KerasTuner continues a promoted trial from the shorter one's weights, restarting a
    learning-rate schedule that had reached zero; tftransfer trains it afresh."""
    frozen = {"fine_tune_depth": [0], "augment": False}
    (tmp_path / "hb").mkdir()
    (tmp_path / "straight").mkdir()
    hyperband = _search(_search_config(tmp_path / "hb", tiny_hub_dir, color_folder,
                                       search="hyperband", search_epochs=3, space=frozen))
    promoted = [t for t in hyperband.trials if "tuner/trial_id" in t["hyperparameters"]]
    assert promoted and promoted[0]["hyperparameters"]["tuner/epochs"] == 3
    values = {name: value for name, value in promoted[0]["hyperparameters"].items()
              if not name.startswith("tuner/")}
    straight = _search(_search_config(tmp_path / "straight", tiny_hub_dir, color_folder,
                                      search="random", max_trials=1, search_epochs=3,
                                      space={**frozen, **values}))
    assert straight.trials[0]["score"] == pytest.approx(promoted[0]["score"], abs=1e-6)


def _hparams_runs(logdir):
    runs = set()
    for root, _, files in os.walk(logdir):
        for name in files:
            if not name.startswith("events.out"):
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "hparams":
                        runs.add(os.path.relpath(root, logdir).split(os.sep)[0])
    return runs


def test_search_json_and_hparams_hold_every_trial(random_search):
    cfg, result = random_search
    saved = json.load(open(os.path.join(cfg.output_dir, "search.json")))
    ids = {t["trial_id"] for t in saved["trials"]}
    assert len(ids) == 3 and ids == {t["trial_id"] for t in result.trials}
    for trial in saved["trials"]:
        assert {"hyperparameters", "score", "status", "seconds"} <= set(trial)
        assert trial["seconds"] > 0
    assert _hparams_runs(os.path.join(cfg.output_dir, "tensorboard", "search")) == ids


def _bare_keras_growth_per_model(cycles=8) -> float:
    """RSS growth (bytes) per build+fit+clear_session cycle of a tiny plain Keras model:
    Keras 3.15 / TF 2.21 keep ~4 MB per cycle however the session is cleared."""
    import keras
    import numpy as np
    x, y = np.random.rand(64, 16).astype("float32"), np.random.randint(0, 3, 64)
    rss = []
    for _ in range(cycles):
        keras.backend.clear_session()
        inputs = keras.Input((16,))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0)
        rss.append(psutil.Process().memory_info().rss)
    return (rss[-1] - rss[2]) / (cycles - 3)


@pytest.mark.e2e  # a 20-trial soak measuring RSS: the slowest in-process test
def test_memory_is_released_between_twenty_trials(tmp_path, tiny_hub_dir, color_folder,
                                                  monkeypatch):
    rss = []
    original = tuners._TimedTrials.run_trial

    def measured(self, trial, *args, **kwargs):
        result = original(self, trial, *args, **kwargs)
        rss.append(psutil.Process().memory_info().rss)
        return result
    monkeypatch.setattr(tuners._TimedTrials, "run_trial", measured)
    loads = _Counter(monkeypatch, backbone_lib, "load_module")
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=20,
                         space={"fine_tune_depth": [0, 1], "head_units": ["", "64"]})
    _search(cfg)
    assert len(rss) == 20
    assert loads.calls == 2  # one for feature extraction, one shared by every trial
    per_trial = (rss[-1] - rss[4]) / 15
    framework = _bare_keras_growth_per_model()
    assert per_trial < 3 * framework + 2**20, (
        f"{per_trial / 2**20:.1f} MB per trial vs {framework / 2**20:.1f} MB per bare Keras model")


def test_a_trial_whose_loss_overflows_fails_and_the_search_goes_on(tmp_path, tiny_hub_dir,
                                                                   color_folder):
    only_l2_varies = {"head_units": "64", "dropout": [0.0], "label_smoothing": [0.0],
                      "optimizer": "adam", "learning_rate": [1e-3], "fine_tune_depth": [0],
                      "fine_tune_lr_factor": [0.1], "bn_inference": [True], "l2": [0.0, 1e38]}
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, augment=False, max_trials=4,
                         max_failed_trials=4, space=only_l2_varies)
    result = _search(cfg)  # TerminateOnNaN stops the overflowing trials; no mock
    by_l2 = {}
    for trial in result.trials:
        by_l2.setdefault(trial["hyperparameters"]["l2"], set()).add(trial["status"])
    assert by_l2 == {0.0: {"COMPLETED"}, 1e38: {"FAILED"}}
    assert all("training diverged" in t["message"][0]
               for t in result.trials if t["status"] == "FAILED")
    assert result.best_values["l2"] == 0.0


def test_bayesian_search_completes_its_trials(tmp_path, tiny_hub_dir, color_folder):
    # KerasTuner's Bayesian oracle needs scikit-learn (pinned in setup.cfg).
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, search="bayesian", max_trials=2)
    result = _search(cfg)
    assert [t["status"] for t in result.trials] == ["COMPLETED", "COMPLETED"]


def test_trials_train_on_the_searched_augmentations_with_soft_labels(tmp_path, tiny_hub_dir,
                                                                      color_folder,
                                                                      monkeypatch):
    from tftransfer.data import augment

    built = []
    original = augment.augmenter
    monkeypatch.setattr(augment, "augmenter",
                        lambda names, num_classes=0: built.append((names, num_classes))
                        or original(names, num_classes))
    cfg = _search_config(tmp_path, tiny_hub_dir, color_folder, max_trials=1,
                         space={"augmentations": ["flip,mixup,cutmix"], "augment": [True],
                                "fine_tune_depth": [0]})
    result = _search(cfg)
    assert result.best_values["augmentations"] == "flip,mixup,cutmix"
    assert (("flip", "mixup", "cutmix"), 3) in built  # the trial's pipeline mixed labels
    assert search.apply_values(cfg, result.best_values).data.augmentations == (
        "flip", "mixup", "cutmix")


def test_the_small_image_point_is_tried_only_where_the_space_holds_it():
    from tftransfer.search import hyperrule, space as search_space

    def space(augment, overrides=None):
        return search_space.build_space(hyperrule.prior(1000, 16), augment, 32,
                                        overrides or {}, image_sizes=(224, 32, 64, 128))
    assert search.seed_points(space(True), own_size=28) == (
        {"image_size": 64, **hyperrule.SMALL_IMAGE_POINT},)
    assert search.seed_points(space(True), own_size=None) == ()
    shallow = {"fine_tune_depth": search_space.Choice((0, 2))}
    assert search.seed_points(space(True, shallow), own_size=28) == ()
    assert search.seed_points(space(False), own_size=8)[0]["image_size"] == 32
