"""One process per role in an output folder: an exclusive lock held for the run's life.

A second `tftransfer.run` on a folder in use stops at once with one line naming the holder.
The lock is the operating system's (`flock`): a process that dies, even by `kill -9`,
releases it, so a rerun takes over and resumes. Roles that share a folder (the chief and
each tuner worker of a distributed search) hold locks of their own names.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from typing import IO

from tftransfer.config.errors import UserError


class FolderInUse(UserError):
    """Another live process holds this role's lock on the output folder."""


def hold(output_dir: str, role: str = "run") -> IO:
    """Takes `output_dir`'s lock for `role`, recording this host and process id in it;
    returns the open lock file, which must stay referenced while the run lasts."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f".{role}.lock")
    lock = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(lock)
        lock.close()
        raise FolderInUse(f"--output_dir {output_dir} is in use by {holder} ({path}); wait "
                          f"for that run or choose another --output_dir") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"host {socket.gethostname()} process {os.getpid()}\n")
    lock.flush()
    return lock


def _holder(lock: IO, attempts: int = 20) -> str:
    """The line the holder wrote; a holder that has just taken the lock has not yet
    written it, so this waits up to a second for it."""
    for _ in range(attempts):
        lock.seek(0)
        holder = lock.read().strip()
        if holder:
            return holder
        time.sleep(0.05)
    return "another process"


@contextlib.contextmanager
def exclusive(path: str):
    """Waits for, then holds, the lock `path` for the `with` block: one process at a time
    does what the block does. A holder that dies releases it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
