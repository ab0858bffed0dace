"""A training backup is kept only for the configuration that wrote it."""
import os

import keras
from conftest import make_config

from tftransfer.train import backup


def test_a_backup_is_resumed_by_its_configuration_and_discarded_by_another(
        tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    folder = str(tmp_path / "backup")
    assert backup.open_for(cfg, folder) is None            # a new backup
    backup.record_best(folder, 0.75)
    os.makedirs(os.path.join(folder, "head"))
    assert backup.open_for(cfg, folder) == 0.75            # the same run again
    other = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                        learning_rate=0.01)
    assert backup.open_for(other, folder) is None          # another run's: discarded
    assert os.listdir(folder) == ["state.json"]


def test_a_phase_killed_before_its_first_backup_starts_afresh(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    folder = tmp_path / "backup"
    (folder / "head").mkdir(parents=True)                  # no training_metadata.json
    phase_callbacks, finished = backup.for_phase(model, [], str(folder), "head")
    assert finished is None and not (folder / "head").exists()
    assert isinstance(phase_callbacks[-1], keras.callbacks.BackupAndRestore)
    assert backup.for_phase(model, ["x"], None, "head") == (["x"], None)
