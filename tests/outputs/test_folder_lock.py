"""One process per role in an output folder; a dead holder's lock is taken over."""
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO

from tftransfer.outputs import folder_lock


def test_a_second_holder_is_refused_with_the_first_one_named(tmp_path):
    first = folder_lock.hold(str(tmp_path))
    with pytest.raises(folder_lock.FolderInUse,
                       match=rf"is in use by host \S+ process {os.getpid()} "):
        folder_lock.hold(str(tmp_path))
    other_role = folder_lock.hold(str(tmp_path), "run.tuner0")   # a tuner worker's own
    first.close()
    other_role.close()
    folder_lock.hold(str(tmp_path)).close()   # released: taken again


def test_a_holder_that_has_not_yet_written_its_line_is_still_named(tmp_path):
    """Two runs started together: the loser may look before the winner has written."""
    path = tmp_path / ".run.lock"
    with open(path, "a+", encoding="utf-8") as taken:
        fcntl.flock(taken, fcntl.LOCK_EX | fcntl.LOCK_NB)
        writer = threading.Timer(0.2, lambda: (taken.write("host h process 7\n"),
                                               taken.flush()))
        writer.start()
        with pytest.raises(folder_lock.FolderInUse, match="is in use by host h process 7 "):
            folder_lock.hold(str(tmp_path))
        writer.join()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tftransfer.outputs import folder_lock; "
         f"lock = folder_lock.hold({str(tmp_path)!r}); print('held', flush=True); "
         "time.sleep(120)"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(folder_lock.FolderInUse, match=f"process {holder.pid}"):
            folder_lock.hold(str(tmp_path))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = folder_lock.hold(str(tmp_path))
    assert f"process {os.getpid()}" in open(lock.name).read()
    lock.close()


def test_exclusive_blocks_wait_for_each_other_and_a_killed_holder_releases(tmp_path):
    path = str(tmp_path / "cache" / "x.lock")
    order = []

    def take(name):
        with folder_lock.exclusive(path):
            order.append(f"{name} in")
            time.sleep(0.3)
            order.append(f"{name} out")

    threads = [threading.Thread(target=take, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [entry.split()[1] for entry in order] == ["in", "out", "in", "out"]

    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from tftransfer.outputs import folder_lock\n"
         f"with folder_lock.exclusive({path!r}):\n print('held', flush=True); time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with folder_lock.exclusive(path):   # would wait for ever if the dead holder kept it
        pass
