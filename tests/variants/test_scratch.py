import os

import tensorflow as tf
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.report import comparison
from tftransfer.train import training as train_lib
from tftransfer.variants import evaluation as variants, scratch


def test_from_scratch_trains_every_block_in_one_phase_at_the_head_rate(tmp_path):
    cfg = make_config(tmp_path, dataset="mnist", hub_handle="https://tfhub.dev/x/1", epochs=6, head_epochs=2, fine_tune_depth=1,
                      learning_rate=0.01, fine_tune_lr_factor=0.1, unfreeze_schedule=[1],
                      compare_scratch=True)
    made = scratch.scratch_config(cfg)
    assert made.output_dir == os.path.join(str(tmp_path), "scratch")
    assert (made.backbone.fine_tune_depth, made.backbone.bn_inference) == (-1, False)
    assert train_lib.plan_phases(made) == [("fine_tune", -1, 6, 0.01)]
    assert not made.train.compare_scratch


def test_under_a_budget_the_clock_not_the_epochs_ends_it(tmp_path):
    cfg = make_config(tmp_path, dataset="mnist", hub_handle="https://tfhub.dev/x/1", epochs=4, time_budget="10m")
    assert scratch.scratch_config(cfg).train.epochs == 4 * scratch.BUDGETED_EPOCHS_FACTOR
    phases = [{"seconds": 12.5}, {"seconds": 30.0}]
    assert scratch.training_seconds(phases) == 42.5


def test_the_scratch_variant_is_trained_evaluated_exported_and_compared(
        tmp_path, tiny_hub_dir, color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, epochs=2,
                      head_epochs=1, fine_tune_depth=1, compare_scratch=True)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    strategy = tf.distribute.get_strategy()
    training = {"phases": [{"seconds": 1.0}]}
    block = variants.scratch_variant(data, cfg, strategy, training)
    [phase] = block["training"]["phases"]
    assert (phase["name"], phase["fine_tune_depth"], phase["epochs"]) == ("fine_tune", -1, 2)
    assert len(phase["epoch_seconds"]) == 2 and phase["epoch_seconds"][1] <= phase["seconds"]
    assert block["export_dir"] == os.path.join(cfg.output_dir, "scratch", "saved_model", "1")
    assert {"validation", "test", "performance"} <= set(block)
    rows = comparison.rows({"test": {"accuracy": 0.5}, "scratch": block})
    assert rows[1]["model"] == "from scratch"
    assert rows[1]["clean_accuracy"] == block["test"]["accuracy"]
    assert rows[1]["training_seconds"] > 0
