import keras_tuner as kt
import pytest

from tftransfer.search import hyperrule, space as search_space, tuners

ORACLES = {"random": lambda: kt.oracles.RandomSearchOracle(max_trials=5, seed=1),
           "bayesian": lambda: kt.oracles.BayesianOptimizationOracle(max_trials=5, seed=1),
           "hyperband": lambda: kt.oracles.HyperbandOracle(max_epochs=3, seed=1)}


def _oracle(name, tmp_path):
    """A tftransfer oracle over the default space for a medium-sized dataset."""
    oracle = ORACLES[name]()
    oracle.__class__ = tuners.extended_oracle_class(type(oracle))
    oracle.objective = kt.Objective("val_accuracy", "max")
    oracle._set_project_dir(str(tmp_path), name)
    space = search_space.build_space(hyperrule.prior(10_000, 16), False, 64, {})
    hp = kt.HyperParameters()
    search_space.declare_all(hp, space)
    oracle.update_space(hp)
    return oracle


def _searched(values):
    return {name: value for name, value in values.items() if not name.startswith("tuner/")}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_every_tuner_starts_at_the_spaces_starting_point(name, tmp_path):
    oracle = _oracle(name, tmp_path)
    first = _searched(oracle.create_trial("tuner0").hyperparameters.values)
    assert first == {"head_units": "512,256", "dropout": 0.0, "l2": 0.0,
                     "label_smoothing": 0.0, "optimizer": "adam",
                     "learning_rate": pytest.approx((3e-4 * 1e-2) ** 0.5),
                     "fine_tune_depth": 0,
                     "fine_tune_lr_factor": pytest.approx((0.03 * 0.5) ** 0.5),
                     "augment": False, "batch_size": 64}  # SGD's learning rate is inactive
    later = [_searched(oracle.create_trial(f"tuner{i}").hyperparameters.values)
             for i in (1, 2)]
    assert first not in later and later[0] != later[1]


def test_a_resumed_search_does_not_rerun_the_starting_point(tmp_path):
    oracle = _oracle("random", tmp_path)
    first = oracle.create_trial("tuner0")
    oracle.update_trial(first.trial_id, {"val_accuracy": 0.5})
    oracle.end_trial(first)
    oracle.save()
    resumed = _oracle("random", tmp_path)
    resumed.reload()
    assert len(resumed.trials) == 1
    assert resumed.create_trial("tuner0").hyperparameters.values != first.hyperparameters.values


def test_a_range_starts_at_its_start_else_its_middle():
    start_of, Range = search_space.start_of, search_space.Range
    assert start_of(Range(1e-4, 1e-2, log=True)) == pytest.approx(1e-3)
    assert start_of(Range(0.0, 0.5)) == 0.25
    assert start_of(Range(0.3, 0.3, log=True)) == 0.3
    assert start_of(Range(0.0, 0.5, start=0.1)) == 0.1
