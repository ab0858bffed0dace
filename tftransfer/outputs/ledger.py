"""The time a budgeted run has spent, kept across interruptions (`<output_dir>/budget.json`).

Each attempt adds its own wall time since it started; the file is rewritten at every stage
end and every few seconds in between (`keep_recording`), so a run killed and started again
is charged for what the killed attempt spent up to its last record. A run that finished leaves `finished: true`, and the
next run on the folder starts a new account.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

from tftransfer.outputs import files, run_folder


class Ledger:
    def __init__(self, output_dir: str, budget: float, started: float | None = None,
                 clock: Callable[[], float] = time.time):
        self.path = os.path.join(output_dir, run_folder.BUDGET_JSON)
        self.budget, self.clock = budget, clock
        self.started = clock() if started is None else started
        saved = files.read_json(self.path) or {}
        resumed = not saved.get("finished") and saved.get("budget") == budget
        self.earlier = float(saved.get("spent", 0.0)) if resumed else 0.0
        self.attempts = int(saved.get("attempts", 0)) + 1 if resumed else 1
        self.stages: dict[str, float] = dict(saved.get("stages", {})) if resumed else {}
        # What the first attempt decided (its plan), so a resumed attempt follows it.
        self.notes: dict = dict(saved.get("notes", {})) if resumed else {}
        self._stage_start = self.started
        self._lock = threading.Lock()
        self.record()

    def keep_recording(self, every: float = 5.0) -> None:
        """Rewrites the file every `every` seconds from a daemon thread until `finish`."""
        self._stop = threading.Event()

        def beat():
            while not self._stop.wait(every):
                self.record()
        threading.Thread(target=beat, name="budget-ledger", daemon=True).start()

    def finish(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self._stop.set()
        self.record(finished=True)

    def spent(self) -> float:
        """Seconds charged so far: earlier attempts and this one."""
        return self.earlier + self.clock() - self.started

    def left(self) -> float:
        return self.budget - self.spent()

    def deadline(self) -> float:
        """The budget's end on this machine's clock (time.time())."""
        return self.clock() + self.left()

    def end_stage(self, name: str) -> float:
        """Charges the time since the last stage ended to `name`; returns those seconds."""
        now = self.clock()
        seconds = now - self._stage_start
        self._stage_start = now
        self.stages[name] = self.stages.get(name, 0.0) + seconds
        self.record()
        return seconds

    def record(self, finished: bool = False) -> None:
        with self._lock:
            files.write_json(self.path, {"budget": self.budget, "spent": self.spent(),
                                         "attempts": self.attempts, "stages": dict(self.stages),
                                         "notes": dict(self.notes), "finished": finished},
                             indent=2)

    def note(self, name: str, value) -> None:
        self.notes[name] = value
        self.record()
