import keras_tuner as kt
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.config import cluster
from tftransfer.search import hyperrule, space as search_space, tuners

# The default space for a medium-sized dataset.
SPACE = search_space.build_space(hyperrule.prior(10_000, 16), False, 64, {})
KERAS_TUNER_ORACLES = {"random": kt.oracles.RandomSearchOracle,
                       "bayesian": kt.oracles.BayesianOptimizationOracle,
                       "hyperband": kt.oracles.HyperbandOracle}


class _SpaceOnly(kt.HyperModel):
    """Declares the space; the tests here run no trial."""

    def build(self, hp):
        search_space.declare_all(hp, SPACE)


@pytest.fixture
def make_tuner(tmp_path, tiny_hub_dir, color_folder):
    """name -> the search's tuner of that name, in tmp_path/run (neither data nor
    backbone is loaded)."""
    def made(name):
        cfg = make_config(tmp_path / "run", dataset=color_folder, hub_handle=tiny_hub_dir,
                          search=name, max_trials=5, search_epochs=3, seed=1)
        return tuners.make_tuner(cfg, _SpaceOnly(), tf.distribute.get_strategy(),
                                 "val_accuracy")
    return made


def _searched(values):
    return {name: value for name, value in values.items() if not name.startswith("tuner/")}


@pytest.fixture
def clock(monkeypatch):
    """{"t": seconds}: what tuners.py reads as time.time(), set by the test."""
    import types

    now = {"t": 0.0}
    monkeypatch.setattr(tuners, "time", types.SimpleNamespace(time=lambda: now["t"]))
    return now


def _run_trial(oracle, clock, seconds: float, score: float = 0.5):
    """A trial the oracle hands out, taking `seconds` and ending COMPLETED with `score`."""
    trial = oracle.create_trial("tuner0")
    clock["t"] += seconds
    oracle.update_trial(trial.trial_id, {"val_accuracy": score})
    trial.status = kt.engine.trial.TrialStatus.COMPLETED
    oracle.end_trial(trial)
    return trial


@pytest.mark.parametrize("name", sorted(KERAS_TUNER_ORACLES))
def test_the_tuner_holds_our_oracle_subclass_as_it_was_passed_in(name, make_tuner,
                                                                 monkeypatch, tmp_path):
    made, make_oracle = [], tuners.make_oracle

    def recorded(*args):
        made.append(make_oracle(*args))
        return made[-1]
    monkeypatch.setattr(tuners, "make_oracle", recorded)
    tuner = make_tuner(name)
    assert tuner.oracle is made[0]
    assert type(tuner.oracle) is tuners.ORACLES[name]  # a class of the module, not one made
    assert isinstance(tuner.oracle, KERAS_TUNER_ORACLES[name])
    assert isinstance(tuner, tuners.TransferTuner)
    assert isinstance(tuner, tuners.TransferHyperbandTuner) == (name == "hyperband")
    assert (tuner.oracle.objective.name, tuner.oracle.objective.direction) == (
        "val_accuracy", "max")
    assert tuner.oracle.seed == 1 and tuner.project_dir == str(tmp_path / "run" / "search")
    budget = ((tuner.oracle.max_epochs, tuner.oracle.factor) if name == "hyperband"
              else tuner.oracle.max_trials)
    assert budget == ((3, 3) if name == "hyperband" else 5)
    assert (tuner.oracle.max_consecutive_failed_trials, tuner.executions_per_trial) == (3, 1)


def test_the_chief_holds_our_oracle_and_a_tuner_worker_a_client_of_it(make_tuner,
                                                                       monkeypatch):
    """KerasTuner's BaseTuner wraps the oracle it is given in a client on a tuner worker;
    the chief keeps it, to serve it."""
    monkeypatch.setenv(cluster.ORACLE_IP, "127.0.0.1")
    monkeypatch.setenv(cluster.ORACLE_PORT, "8000")  # nothing is sent in this test
    monkeypatch.setenv(cluster.TUNER_ID, "chief")
    assert type(make_tuner("random").oracle) is tuners.TransferRandomSearchOracle
    monkeypatch.setenv(cluster.TUNER_ID, "tuner1")
    worker = make_tuner("random")
    assert type(worker.oracle).__name__ == "OracleClient"
    assert worker.oracle.objective.name == "val_accuracy"  # from the oracle it wraps
    assert worker.tuner_id == "tuner1"


@pytest.mark.parametrize("name", sorted(KERAS_TUNER_ORACLES))
def test_every_tuner_starts_at_the_spaces_starting_point(name, make_tuner):
    oracle = make_tuner(name).oracle
    first = _searched(oracle.create_trial("tuner0").hyperparameters.values)
    assert first == {"head_units": "512,256", "dropout": 0.0, "l2": 0.0,
                     "label_smoothing": 0.0, "optimizer": "adam",
                     "learning_rate": pytest.approx((3e-4 * 1e-2) ** 0.5),
                     "fine_tune_depth": 0,
                     "fine_tune_lr_factor": pytest.approx((0.03 * 0.5) ** 0.5),
                     "bn_inference": True, "augment": False,
                     "batch_size": 64}  # SGD's learning rate is inactive
    later = [_searched(oracle.create_trial(f"tuner{i}").hyperparameters.values)
             for i in (1, 2)]
    assert first not in later and later[0] != later[1]


@pytest.mark.parametrize("name", sorted(KERAS_TUNER_ORACLES))
def test_the_seed_points_come_right_after_the_start(name, make_tuner):
    oracle = make_tuner(name).oracle
    oracle.seed_points = ({"fine_tune_depth": -1, "augment": True},)
    start = _searched(oracle.create_trial("tuner0").hyperparameters.values)
    seeded = _searched(oracle.create_trial("tuner1").hyperparameters.values)
    assert seeded == {**start, "fine_tune_depth": -1, "augment": True}
    assert _searched(oracle.create_trial("tuner2").hyperparameters.values) not in (start,
                                                                                  seeded)


def test_a_seed_points_trial_trains_for_the_seed_epochs(make_tuner):
    class Recording:
        def run_trial(self, trial, *args, **kwargs):
            return kwargs

    class Tuner(tuners._LongerSeedTrials, Recording):
        pass
    tuner = Tuner()
    tuner.oracle = make_tuner("random").oracle
    tuner.oracle.seed_points = ({"fine_tune_depth": -1},)
    start, seed, other = (tuner.oracle.create_trial(f"tuner{i}") for i in range(3))
    assert tuner.run_trial(seed, epochs=3) == {"epochs": 3}          # no seed epochs
    tuner.seed_epochs = 9
    assert [tuner.run_trial(t, epochs=3)["epochs"] for t in (start, seed, other)] == [3, 9, 3]


def test_search_json_marks_the_seed_points_trials(make_tuner, clock):
    from tftransfer.search import tuning

    tuner = make_tuner("random")
    tuner.oracle.seed_points = ({"fine_tune_depth": -1},)
    for _ in range(3):
        _run_trial(tuner.oracle, clock, 1)
    records = sorted(tuning._trial_records(tuner), key=lambda r: int(r["trial_id"]))
    assert [r["seed"] for r in records] == [False, True, False]


def test_a_resumed_search_does_not_rerun_the_starting_point(make_tuner):
    oracle = make_tuner("random").oracle
    first = oracle.create_trial("tuner0")
    oracle.update_trial(first.trial_id, {"val_accuracy": 0.5})
    oracle.end_trial(first)
    oracle.save()
    resumed = make_tuner("random").oracle
    resumed.reload()
    assert len(resumed.trials) == 1
    assert resumed.create_trial("tuner0").hyperparameters.values != first.hyperparameters.values


def test_a_range_starts_at_its_start_else_its_middle():
    start_of, Range = search_space.start_of, search_space.Range
    assert start_of(Range(1e-4, 1e-2, log=True)) == pytest.approx(1e-3)
    assert start_of(Range(0.0, 0.5)) == 0.25
    assert start_of(Range(0.3, 0.3, log=True)) == 0.3
    assert start_of(Range(0.0, 0.5, start=0.1)) == 0.1


@pytest.mark.parametrize("name", sorted(KERAS_TUNER_ORACLES))
def test_no_trial_starts_that_would_end_after_the_deadline(name, make_tuner):
    import time

    oracle = make_tuner(name).oracle
    oracle.deadline, oracle.trial_seconds = time.time() + 3600, 60.0
    assert oracle.create_trial("tuner0").status == kt.engine.trial.TrialStatus.RUNNING
    oracle.deadline = time.time() + 20  # a 60 s trial would overrun it
    assert oracle.create_trial("tuner1").status == kt.engine.trial.TrialStatus.STOPPED


def test_a_budgeted_search_starts_at_the_flags():
    flat = {"head_units": (256,), "dropout": 0.2, "optimizer": "sgd", "learning_rate": 0.05,
            "fine_tune_depth": 2, "fine_tune_lr_factor": 0.1, "bn_inference": False,
            "label_smoothing": 0.9}  # outside the space's range: the range keeps its start
    space = search_space.build_space(hyperrule.prior(10_000, 16), False, 64,
                                     {"head_units": search_space._parse_entry(
                                         "head_units", ["512,256", "256"])})
    started = search_space.start_at_flags(space, flat)
    assert started["head_units"].values == ("256", "512,256")
    assert started["optimizer"].values[0] == "sgd"
    assert set(started["optimizer"].values) == set(space["optimizer"].values)
    assert search_space.start_of(started[search_space.SGD_LEARNING_RATE]) == 0.05
    assert search_space.start_of(started["dropout"]) == 0.2
    assert started["fine_tune_depth"].values[0] == 2
    assert started["bn_inference"].values[0] is False
    assert started["label_smoothing"] == space["label_smoothing"]


def test_trials_that_run_longer_than_planned_move_the_last_start_earlier(make_tuner,
                                                                          monkeypatch):
    import types

    now = {"t": 1000.0}
    monkeypatch.setattr(tuners, "time", types.SimpleNamespace(time=lambda: now["t"]))
    oracle = make_tuner("random").oracle
    oracle.deadline, oracle.trial_seconds = 1000.0 + 290, 20.0   # planned: 20 s a trial
    for _ in range(2):
        trial = oracle.create_trial("tuner0")
        assert trial.status == kt.engine.trial.TrialStatus.RUNNING
        now["t"] += 100                                            # they take 100 s
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        oracle.end_trial(trial)
    assert oracle.expected_trial_seconds() == 100
    # 200 s in, 90 s left: by the plan a 20 s trial fits, by what was seen it does not.
    assert oracle.create_trial("tuner0").status == kt.engine.trial.TrialStatus.STOPPED


def test_slow_trials_end_the_search_early_enough_for_a_slow_final_training(make_tuner,
                                                                          clock):
    oracle = make_tuner("random").oracle
    oracle.deadline, oracle.trial_seconds, oracle.secured_seconds = 1000.0, 50.0, 600.0
    for _ in range(2):
        _run_trial(oracle, clock, 75)                    # 1.5x the estimate
    # The final training will take 1.5 x 600 s too: the search must end 300 s earlier.
    assert oracle.effective_deadline() == pytest.approx(700.0)
    clock["t"] = 620.0
    assert oracle.create_trial("tuner0").status == kt.engine.trial.TrialStatus.STOPPED


def test_a_second_seed_must_fit_before_the_deadline_that_slow_trials_moved(make_tuner,
                                                                           clock):
    oracle = make_tuner("random").oracle
    oracle.deadline, oracle.trial_seconds, oracle.secured_seconds = 300.0, 50.0, 500.0
    for _ in range(2):
        _run_trial(oracle, clock, 60)                    # 1.2x the estimate
    # 180 s left by the plain deadline; the final training will need 0.2 x 500 s more.
    assert oracle.effective_deadline(holdback=False) == pytest.approx(200.0)
    assert oracle.second_seed_fits()                     # 120 + 60 <= 200
    clock["t"] = 150.0
    assert not oracle.second_seed_fits()                 # 150 + 60 > 200, though < 300


def test_the_starts_trial_is_measured_against_its_own_estimate(make_tuner, clock):
    oracle = make_tuner("random").oracle
    oracle.deadline, oracle.trial_seconds, oracle.secured_seconds = 200.0, 5.0, 60.0
    oracle.start_trial_seconds = 30.0            # uncached and larger than the others
    _run_trial(oracle, clock, 33)                # 1.1x its own estimate, 6.6x the mean's
    assert oracle.create_trial("tuner0").status == kt.engine.trial.TrialStatus.RUNNING
    assert oracle.slowdown() == pytest.approx(1.1)
    assert oracle.expected_trial_seconds() == pytest.approx(5.5)


def test_a_seed_points_trial_starts_when_its_own_estimate_fits(make_tuner, clock):
    oracle = make_tuner("random").oracle
    oracle.seed_points = ({"fine_tune_depth": -1},)
    oracle.deadline, oracle.trial_seconds = 100.0, 60.0       # the mean trial: 60 s
    oracle.start_trial_seconds, oracle.seed_trial_seconds = 50.0, (40.0,)
    _run_trial(oracle, clock, 50)
    assert oracle.expected_trial_seconds(1) == pytest.approx(40.0)
    seed = oracle.create_trial("tuner0")                      # 50 + 40 <= 100
    assert seed.status == kt.engine.trial.TrialStatus.RUNNING
    assert seed.hyperparameters.values["fine_tune_depth"] == -1
    clock["t"] += 40
    oracle.update_trial(seed.trial_id, {"val_accuracy": 0.4})
    oracle.end_trial(seed)
    assert oracle.create_trial("tuner0").status == kt.engine.trial.TrialStatus.STOPPED


def test_a_slowdown_costs_the_final_training_epochs_not_the_seed_points_trial(make_tuner,
                                                                             clock):
    oracle = make_tuner("random").oracle
    oracle.seed_points = ({"fine_tune_depth": -1},)
    oracle.deadline, oracle.trial_seconds, oracle.secured_seconds = 150.0, 20.0, 200.0
    oracle.start_trial_seconds, oracle.seed_trial_seconds = 40.0, (20.0,)
    _run_trial(oracle, clock, 56)                             # 1.4x its estimate
    seed = oracle.create_trial("tuner0")
    assert seed.status == kt.engine.trial.TrialStatus.RUNNING
    assert seed.hyperparameters.values["fine_tune_depth"] == -1
    # It started by the plain deadline: by the one moved to 150 - 0.4 x 200 = 70, its
    # 1.4 x 20 s from 56 s would not have fitted.
    assert oracle.effective_deadline() == pytest.approx(70.0)
    assert clock["t"] + oracle.expected_trial_seconds(1) == pytest.approx(84.0)
    clock["t"] += 28
    oracle.update_trial(seed.trial_id, {"val_accuracy": 0.4})
    oracle.end_trial(seed)
    # A trial of the search's own draws is refused by the moved deadline: 84 + 28 > 70.
    assert oracle.create_trial("tuner0").status == kt.engine.trial.TrialStatus.STOPPED


def test_time_for_a_second_seed_is_kept_back_only_once_a_trial_could_need_one(
        make_tuner, clock):
    oracle = make_tuner("random").oracle
    oracle.deadline, oracle.trial_seconds, oracle.holdback_trials = 1000.0, 50.0, 1
    oracle.validation_examples = 1000                    # a standard error of 0.016

    def run(score):
        return _run_trial(oracle, clock, 50, score)
    start = run(0.5)
    assert _searched(start.hyperparameters.values) == _searched(oracle.starting_values())
    assert not oracle.start_beaten() and oracle.effective_deadline() == 1000.0
    run(0.4)                                             # below the start: nothing to check
    run(0.505)                                           # ahead by under half that error
    assert oracle.effective_deadline() == 1000.0
    run(0.6)                                             # beats it: a second seed will run
    assert oracle.start_beaten() and oracle.effective_deadline() == pytest.approx(950.0)


def test_a_trial_line_says_which_trial_its_result_time_budget_and_values():
    line = tuners.trial_line("3", 10, {"learning_rate": 0.0012345, "dropout": 0.1,
                                       "optimizer": "adam", "tuner/epochs": 3},
                             "COMPLETED", 0.81234, 41.4, 150.0, "val_accuracy")
    assert line == ("Trial 3 of 10: val_accuracy 0.8123 in 41 s, 2.5 min of the search "
                    "budget left; learning_rate=0.00123, dropout=0.1, optimizer=adam")
    failed = tuners.trial_line("4", None, {}, "FAILED", None, 2.0, None, "val_accuracy")
    assert failed == "Trial 4: failed in 2 s; defaults"


def test_the_tuner_logs_one_line_as_each_trial_ends(make_tuner, monkeypatch):
    logged = []
    monkeypatch.setattr(tuners.logging, "info", lambda fmt, *args: logged.append(fmt % args))
    tuner = make_tuner("random")
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    tuner._trial_clock = 0.0
    tuner.oracle.update_trial(trial.trial_id, {"val_accuracy": 0.75})
    trial.status = kt.engine.trial.TrialStatus.COMPLETED  # as KerasTuner's search sets it
    tuner.on_trial_end(trial)
    lines = [line for line in logged if line.startswith("Trial ")]
    assert len(lines) == 1 and lines[0].startswith("Trial 1 of 5: val_accuracy 0.7500 in ")
