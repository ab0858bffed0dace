"""Measured step times: real steps of each configuration, on the run's own batch."""
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.distribute import strategy as distribute
from tftransfer.search import step_times


def _setup(tmp_path, hub, folder, **values):
    """(config, strategy, data) of a small run on the colour folder, batch 16."""
    cfg = make_config(tmp_path, dataset=folder, hub_handle=hub, batch_size=16, **values)
    strategy = distribute.make_strategy(cfg.strategy, cfg.data.batch_size)
    return cfg, strategy, data_lib.load_data(cfg.data, cfg.seed, "",
                                             strategy.num_replicas_in_sync)


def test_measures_frozen_the_deepest_and_the_flags_depth_and_interpolates_the_rest(
        tmp_path, tiny_hub_dir, color_folder):
    cfg, strategy, data = _setup(tmp_path, tiny_hub_dir, color_folder, image_size=24,
                                 fine_tune_depth=1)
    times = step_times.measure(cfg, data, (0, 1, 2, -1), strategy)
    assert set(times.train) == {0, 1, 2, -1} and set(times.fine_tune_setup) == {1, 2, -1}
    assert all(t > 0 for t in (*times.train.values(), times.forward, times.head, times.setup))
    low, high = sorted((times.train[1], times.train[-1]))
    assert low <= times.train[2] <= high   # interpolated between its measured neighbours
    assert times.input >= 0


def test_smaller_searched_sizes_are_measured_and_larger_ones_interpolated(
        tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    cfg, strategy, data = _setup(tmp_path, tiny_hub_dir, color_folder, image_size=32)
    sizes_measured = []
    original = step_times._frozen_step

    def recorded(cfg, module, images, labels, num_classes, size, strategy):
        sizes_measured.append(size)
        return original(cfg, module, images, labels, num_classes, size, strategy)
    monkeypatch.setattr(step_times, "_frozen_step", recorded)
    times = step_times.measure(cfg, data, (0,), strategy, sizes=(32, 16, 24, 64))
    assert sizes_measured == [16, 24]
    assert set(times.scale) == {32, 16, 24, 64} and times.scale[32] == 1.0
    assert all(f > 0 for f in times.scale.values())
    assert times.scale[64] == times.scale[32]   # beyond the measured: the nearest's factor


def test_without_the_deepest_its_step_is_estimated_from_the_frozen_one(
        tmp_path, tiny_hub_dir, color_folder, monkeypatch):
    cfg, strategy, data = _setup(tmp_path, tiny_hub_dir, color_folder, image_size=24)
    built_depths, built = [], step_times._built

    def recorded(cfg, module, num_classes, size, depth, strategy):
        built_depths.append(depth)
        return built(cfg, module, num_classes, size, depth, strategy)
    monkeypatch.setattr(step_times, "_built", recorded)
    times = step_times.measure(cfg, data, (0, 1, 2, -1), strategy, deepest_too=False)
    assert built_depths == [0]
    assert times.train[-1] == times.train[0] * step_times.FULL_BACKPROP_FACTOR
    assert times.train[0] < times.train[1] < times.train[2] < times.train[-1]
    assert times.fine_tune_setup[-1] == times.setup * step_times.FULL_TRACE_FACTOR
    assert times.setup < times.fine_tune_setup[1] < times.fine_tune_setup[-1]
