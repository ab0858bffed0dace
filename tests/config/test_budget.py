"""The time budget's parsing and what each part of a run costs, from given step times."""
import json

import pytest

from tftransfer.config import budget as budget_lib
from tftransfer.config.budget import StepTimes, Workload

TIMES = StepTimes(forward=0.05, head=0.001, train={0: 0.1, 4: 0.2, 8: 0.3, -1: 0.5}, setup=5.0)
WORK = Workload(train=6400, validation=640, test=640, batch_size=64)   # 100 train batches


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400),
                                           ("45", 45), (" 2M ", 120), (".5h", 1800)])
def test_durations_parse(text, seconds):
    assert budget_lib.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "20 minutes", "-5m", "0s", "1.5.2h", "5d"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(ValueError):
        budget_lib.parse_duration(text)


def test_epoch_costs_follow_the_step_times():
    # 100 train batches at the depth's step, 10 validation batches of inference.
    assert budget_lib.epoch_seconds(TIMES, WORK, 4) == pytest.approx(100 * 0.2 + 10 * 0.05)
    assert budget_lib.epoch_seconds(TIMES, WORK, 0, fraction=0.5, cached=True) == \
        pytest.approx(50 * 0.001 + 10 * 0.001)
    assert budget_lib.evaluation_seconds(TIMES, WORK) == pytest.approx(20 * 0.05)


def test_an_epoch_on_images_is_charged_its_input_pipeline_too():
    times = StepTimes(**{**TIMES.__dict__, "input": 0.02})
    assert budget_lib.epoch_seconds(times, WORK, 4) == pytest.approx(100 * 0.22 + 10 * 0.05)
    assert budget_lib.epoch_seconds(times, WORK, 0, cached=True) == \
        budget_lib.epoch_seconds(TIMES, WORK, 0, cached=True)   # features need no pipeline


def test_depths_not_measured_are_interpolated_between_their_neighbours():
    filled = budget_lib.interpolate_depths({0: 0.1, 13: 0.4, -1: 0.6}, (0, 2, 13, 15, -1), 16)
    assert filled[2] == pytest.approx(0.1 + 2 / 13 * 0.3)
    assert filled[15] == pytest.approx(0.4 + 2 / 3 * 0.2)
    assert (filled[0], filled[13], filled[-1]) == (0.1, 0.4, 0.6)
    assert budget_lib.interpolate_depths({0: 0.1, 4: 0.2}, (8,), 16)[8] == 0.2  # beyond: nearest


@pytest.mark.parametrize("seconds, text", [(90, "90s"), (150, "150s"), (1200, "20m"),
                                           (1234, "21m"), (5400, "90m"), (9000, "2.5h")])
def test_durations_print_as_a_user_would_type_them(seconds, text):
    assert budget_lib.format_duration(seconds) == text


def test_other_resolutions_scale_the_backbone_s_steps_by_pixels():
    scale = budget_lib.scale_by_pixels({224: 1.0, 32: 0.1}, (224, 32, 64, 128))
    assert scale[224] == 1.0 and scale[32] == 0.1
    assert scale[128] == pytest.approx(0.1 + (128**2 - 32**2) / (224**2 - 32**2) * 0.9)
    times = StepTimes(**{**TIMES.__dict__, "input": 0.02, "scale": scale})
    small = budget_lib.at_size(times, 32)
    assert small.train == {d: pytest.approx(t * 0.1) for d, t in TIMES.train.items()}
    assert (small.forward, small.input) == pytest.approx((0.005, 0.002))
    assert (small.head, small.setup) == (times.head, times.setup)
    assert budget_lib.at_size(times, 224) == times == budget_lib.at_size(times, None)
    saved = budget_lib.times_to_dict(times)
    assert budget_lib.times_from_dict(saved) == times


def test_a_fine_tuning_phase_is_charged_its_own_tracing():
    times = StepTimes(**{**TIMES.__dict__, "fine_tune_setup": {4: 12.0, -1: 20.0}})
    frozen = budget_lib.training_seconds(times, WORK, 0, 3, 1)
    assert frozen == pytest.approx(5.0 + 3 * budget_lib.epoch_seconds(times, WORK, 0))
    two_phases = budget_lib.training_seconds(times, WORK, -1, 3, 1)
    assert two_phases == pytest.approx(5.0 + 20.0 + budget_lib.epoch_seconds(times, WORK, 0)
                                       + 2 * budget_lib.epoch_seconds(times, WORK, -1))
    assert budget_lib.training_seconds(times, WORK, 4, 3, 0) == pytest.approx(
        12.0 + 3 * budget_lib.epoch_seconds(times, WORK, 4))
    assert TIMES.setup_at(-1) == TIMES.setup   # not measured: as a frozen model's
    saved = json.loads(json.dumps(budget_lib.times_to_dict(times)))
    assert budget_lib.times_from_dict(saved) == times
