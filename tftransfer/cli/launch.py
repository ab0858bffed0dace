"""`python -m tftransfer.launch --workers=N [--tuner_workers=M] --flagfile=F [run flags]`

Runs a cluster of `python -m tftransfer.run` processes on this machine (127.0.0.1, free
ports), to try multi-worker training or a distributed search before a real cluster:

- `--workers=N`: N training processes, each with its TF_CONFIG and `--strategy=multi_worker`;
  worker 0 is the chief and writes the outputs.
- `--tuner_workers=M`: KerasTuner's distributed search: a chief (KERASTUNER_TUNER_ID=chief)
  serving the oracle, then training and exporting the best trial, plus M tuners
  (tuner0...) running trials on their own devices (their `--strategy`).

Every other flag goes to each process unchanged. Each output line is prefixed with the
process name (`[worker 0] ...`). If one process fails, or on Ctrl-C, SIGTERM or
`--timeout`, all are stopped. The exit status is 0 only if every process succeeded.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Sequence, TextIO

from tftransfer.config import cluster

HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 10.0
TIMED_OUT = 124          # as coreutils' `timeout`


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]   # added to this process's environment


EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 20000


def _ephemeral_start() -> int | None:
    try:
        with open(EPHEMERAL_RANGE, encoding="utf-8") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_ports(count: int, host: str = HOST, seed: int | None = None) -> list[int]:
    """`count` distinct ports free a moment ago, below the kernel's ephemeral range when it
    is known. A process binds its port only after loading TensorFlow and the data (a
    minute under load); a port from the ephemeral range could be taken meanwhile as the
    source port of any outgoing connection, including a worker's own retries towards it."""
    start = _ephemeral_start()
    candidates = list(range(LOWEST_PORT, start)) if start and start > LOWEST_PORT else []
    random.Random(seed).shuffle(candidates)
    with contextlib.ExitStack() as stack:
        ports = []
        for port in [*candidates, *[0] * count]:   # bind(0), the kernel's choice, last
            if len(ports) == count:
                break
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind((host, port))
            except OSError:
                continue
            ports.append(sock.getsockname()[1])
        return ports


def _run_command(run_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "tftransfer.run", *run_args]


def worker_processes(workers: int, run_args: Sequence[str],
                     host: str = HOST) -> list[ProcessSpec]:
    addresses = [f"{host}:{port}" for port in free_ports(workers, host)]
    argv = _run_command([*run_args, "--strategy=multi_worker"])  # the last flag wins
    return [ProcessSpec(f"worker {i}", argv,
                        {cluster.TF_CONFIG: cluster.tf_config_json(addresses, i)})
            for i in range(workers)]


def tuner_processes(tuner_workers: int, run_args: Sequence[str],
                    host: str = HOST) -> list[ProcessSpec]:
    port = free_ports(1, host)[0]
    names = ["chief"] + [f"tuner{i}" for i in range(tuner_workers)]
    return [ProcessSpec(name, _run_command(run_args),
                        cluster.tuner_environment(name, host, port)) for name in names]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the launcher dies, even by SIGKILL,
    so no process outlives the launcher."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Cluster:
    """Started processes whose merged stdout/stderr lines are copied, prefixed, to `output`."""

    def __init__(self, specs: Sequence[ProcessSpec], output: TextIO = sys.stdout):
        self.specs, self.output = list(specs), output
        self.processes: list[subprocess.Popen] = []
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.output.write(f"[{name}] {line.rstrip()}\n")
            self.output.flush()

    def start(self) -> None:
        for spec in self.specs:
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
            process = subprocess.Popen(spec.argv, env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=_die_with_parent)
            self.processes.append(process)
            self.say("launch", f"started {spec.name} (pid {process.pid})")
        for spec, process in zip(self.specs, self.processes):
            reader = threading.Thread(target=self._copy, args=(spec.name, process.stdout),
                                      daemon=True)
            reader.start()
            self._readers.append(reader)

    def _copy(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(name, raw.decode("utf-8", errors="replace"))
        stream.close()

    def wait(self, timeout: float | None = None) -> int:
        """0 when every process exits with 0; else stops the rest at the first failure, or
        at the timeout (status 124), and returns non-zero."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in self.processes]
            failed = [(s.name, c) for s, c in zip(self.specs, codes) if c not in (None, 0)]
            if failed:
                self.say("launch", f"{failed[0][0]} exited with status {failed[0][1]}; "
                                   "stopping all")
                self.stop()
                return 1
            if all(c == 0 for c in codes):
                self._join_readers()
                return 0
            if deadline is not None and time.monotonic() > deadline:
                self.say("launch", f"timed out after {timeout:g} s; stopping all")
                self.stop()
                return TIMED_OUT
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to every live process group, SIGKILL to those still alive after a grace
        period; returns once all have exited."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(p.poll() is None for p in self.processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._signal_all(signal.SIGKILL)
        for process in self.processes:
            process.wait()
        self._join_readers()

    def _signal_all(self, sig: int) -> None:
        for process in self.processes:
            if process.poll() is None:  # not yet reaped, so its group id is still its own
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)  # the process and anything it started

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(timeout=STOP_GRACE_SECONDS)

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:  # e.g. Ctrl-C between two starts: stop those already running
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_cluster(specs: Sequence[ProcessSpec], timeout: float | None = None,
                output: TextIO = sys.stdout) -> int:
    """Starts the processes, waits for them, and always stops every one of them: on a
    failure, the timeout, Ctrl-C or SIGTERM (then status 130) too."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # signal handlers can only be set there
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with Cluster(specs, output) as running:
            return running.wait(timeout)
    except KeyboardInterrupt:   # the Cluster has stopped every process on the way out
        output.write("[launch] interrupted; all processes stopped\n")
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tftransfer.launch", allow_abbrev=False,
        description="Run tftransfer.run as a local cluster; other flags go to every process.")
    parser.add_argument("--workers", type=int, default=1,
                        help="multi-worker training processes (TF_CONFIG, multi_worker)")
    parser.add_argument("--tuner_workers", type=int, default=0,
                        help="distributed search: a chief plus this many tuner processes")
    parser.add_argument("--timeout", type=float, default=0,
                        help="stop everything after this many seconds (0: no limit)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, run_args = parser.parse_known_args(argv)
    if args.workers < 1 or args.tuner_workers < 0:
        parser.error("--workers must be >= 1 and --tuner_workers >= 0")
    if args.tuner_workers and args.workers > 1:
        parser.error("--workers and --tuner_workers cannot be combined: tuner processes "
                     "train their trials on their own devices")
    specs = (tuner_processes(args.tuner_workers, run_args) if args.tuner_workers
             else worker_processes(args.workers, run_args))
    return run_cluster(specs, args.timeout or None)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
