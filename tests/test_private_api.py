"""The private Keras and KerasTuner names tftransfer relies on, all in private_api.py: the
installed versions are the pinned ones, every listed name (and the parameters we pass or
take) is still there, and no other module spells one."""
from __future__ import annotations

import importlib
import inspect
import os
import re

import keras
import keras_tuner as kt
import pytest
from conftest import REPO

from tftransfer import private_api

PACKAGE = os.path.join(REPO, "tftransfer")
METHODS = [entry for entry in private_api.PRIVATE_NAMES if entry.parameters is not None]
ATTRIBUTES = [entry for entry in private_api.PRIVATE_NAMES if entry.parameters is None]


def _owner(entry: private_api.PrivateName) -> type:
    module, _, name = entry.owner.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _label(entry: private_api.PrivateName) -> str:
    return f"{entry.owner}.{entry.name}"


@pytest.mark.parametrize("module", sorted(private_api.PINNED_VERSIONS))
def test_the_installed_version_is_the_pinned_one(module):
    installed = importlib.import_module(module).__version__
    assert installed == private_api.PINNED_VERSIONS[module], (
        f"{module} {installed} is installed; tftransfer/private_api.py is pinned to "
        f"{private_api.PINNED_VERSIONS[module]}: check each private name it lists, then "
        "update the pin")


@pytest.mark.parametrize("entry", METHODS, ids=_label)
def test_every_listed_private_method_keeps_its_parameters(entry):
    method = getattr(_owner(entry), entry.name, None)
    assert callable(method), f"{_label(entry)} is gone"
    parameters = list(inspect.signature(method).parameters)[1:]  # without self
    assert tuple(parameters) == entry.parameters, f"{_label(entry)}{parameters}"


@pytest.mark.parametrize("entry", ATTRIBUTES, ids=_label)
def test_every_listed_private_attribute_is_still_set_on_a_new_instance(entry):
    assert entry.name in vars(_owner(entry)()), f"{_label(entry)} is gone"


def test_fit_starts_at_the_epoch_backup_and_restore_sets_and_nothing_resets_it():
    assert "self._initial_epoch or initial_epoch" in inspect.getsource(keras.Model.fit)
    assert "self.model._initial_epoch = " in inspect.getsource(keras.callbacks.BackupAndRestore)
    model = keras.Model()
    assert private_api.resumed_epoch(model) is None
    model._initial_epoch = 3  # as BackupAndRestore does
    assert private_api.resumed_epoch(model) == 3
    private_api.forget_resumed_epoch(model)
    assert private_api.resumed_epoch(model) is None


def test_trial_checkpoint_is_where_kerastuner_saves_a_trials_best_epoch(tmp_path):
    class Tuner(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            return 0.0
    tuner = Tuner(kt.oracles.RandomSearchOracle(), directory=str(tmp_path),
                  project_name="search")
    assert private_api.trial_checkpoint(str(tmp_path / "search"), "07") == (
        tuner._get_checkpoint_fname("07"))


def test_private_api_spells_no_private_name_it_does_not_list():
    with open(os.path.join(PACKAGE, "private_api.py"), encoding="utf-8") as f:
        spelled = set(re.findall(r"(?:\.|def |\")(_[a-z]\w*)", f.read()))
    listed = {entry.name for entry in private_api.PRIVATE_NAMES}
    assert spelled <= listed, sorted(spelled - listed)


def test_no_other_module_spells_a_listed_private_name():
    names = {entry.name for entry in private_api.PRIVATE_NAMES}
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(names))) + r")(?!\w)")
    found = []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(root, name)
            if not name.endswith(".py") or path == os.path.join(PACKAGE, "private_api.py"):
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    found += [f"{os.path.relpath(path, REPO)}:{number}: {match}"
                              for match in pattern.findall(line)]
    assert not found, "private names outside tftransfer/private_api.py:\n" + "\n".join(found)
