"""A budgeted run's account of time: charged across a kill and a resume."""
from tftransfer.outputs import files
from tftransfer.outputs.ledger import Ledger


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_a_resumed_run_is_charged_for_what_the_killed_attempt_spent(tmp_path):
    clock = Clock()
    first = Ledger(str(tmp_path), 600, clock=clock)
    clock.now += 100
    first.end_stage("start-up")
    first.note("final_epochs", 4)
    clock.now += 50        # killed here: 50 s after its last record are not charged
    clock.now += 1000      # the rerun starts much later
    second = Ledger(str(tmp_path), 600, clock=clock)
    assert second.attempts == 2 and second.spent() == 100
    assert second.notes == {"final_epochs": 4} and second.stages == {"start-up": 100}
    clock.now += 30
    assert second.left() == 600 - 130
    assert second.deadline() == clock.now + 470


def test_a_finished_run_or_another_budget_opens_a_new_account(tmp_path):
    clock = Clock()
    done = Ledger(str(tmp_path), 600, clock=clock)
    clock.now += 200
    done.record(finished=True)
    assert Ledger(str(tmp_path), 600, clock=clock).spent() == 0
    clock.now += 10
    Ledger(str(tmp_path), 600, clock=clock).record()
    other = Ledger(str(tmp_path), 900, clock=clock)
    assert other.spent() == 0 and other.attempts == 1


def test_stages_accumulate_and_the_file_is_written_whole(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path), 60, started=clock.now - 5, clock=clock)
    assert ledger.end_stage("start-up") == 5
    clock.now += 7
    ledger.end_stage("search")
    saved = files.read_json(str(tmp_path / "budget.json"))
    assert saved["stages"] == {"start-up": 5, "search": 7} and saved["spent"] == 12


def test_the_ledger_keeps_recording_between_stages_until_it_finishes(tmp_path):
    import time

    clock = Clock()
    ledger = Ledger(str(tmp_path), 600, clock=clock)
    ledger.keep_recording(every=0.02)
    clock.now += 42        # mid-stage: no end_stage, yet a kill here loses almost nothing
    for _ in range(200):
        if files.read_json(str(tmp_path / "budget.json"))["spent"] == 42:
            break
        time.sleep(0.01)
    assert files.read_json(str(tmp_path / "budget.json"))["spent"] == 42
    ledger.finish()
    clock.now += 8
    time.sleep(0.1)        # the thread has stopped: the finished record stays
    saved = files.read_json(str(tmp_path / "budget.json"))
    assert saved["finished"] and saved["spent"] == 42
