"""The local launcher: per-process TF_CONFIG / KerasTuner environment, prefixed output, and
that every process (and anything it started) is stopped on failure, timeout, SIGTERM, or
when the launcher itself is killed. Children are small Python scripts, not TensorFlow."""
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO

from tftransfer.cli import launch
from tftransfer.config import cluster

SLEEP = "import time; time.sleep(600)"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` is neither running nor an unreaped zombie."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def _started_pids(text: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in
            re.findall(r"\[launch\] started (.+) \(pid (\d+)\)", text)}


@pytest.mark.e2e
def test_output_is_prefixed_per_process_and_success_is_zero():
    specs = [launch.ProcessSpec("worker 0", _python(
                 "import sys; print('hello'); print('warned', file=sys.stderr)"), {}),
             launch.ProcessSpec("worker 1", _python(
                 "import os; print(os.environ['ROLE'])"), {"ROLE": "from its env"})]
    out = io.StringIO()
    assert launch.run_cluster(specs, timeout=120, output=out) == 0
    lines = out.getvalue().splitlines()
    for expected in ("[worker 0] hello", "[worker 0] warned", "[worker 1] from its env"):
        assert expected in lines
    assert set(_started_pids(out.getvalue())) == {"worker 0", "worker 1"}


@pytest.mark.e2e
def test_a_failure_stops_the_others_and_their_children():
    parent = ("import subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', {SLEEP!r}])\n"
              "print('grandchild', child.pid, flush=True)\n"
              "time.sleep(600)")
    specs = [launch.ProcessSpec("worker 0", _python(parent), {}),
             launch.ProcessSpec("worker 1", _python(
                 "import time; time.sleep(4); raise SystemExit(3)"), {})]
    out = io.StringIO()
    assert launch.run_cluster(specs, timeout=300, output=out) == 1
    text = out.getvalue()
    assert "[launch] worker 1 exited with status 3; stopping all" in text
    grandchild = int(re.search(r"\[worker 0\] grandchild (\d+)", text).group(1))
    assert _gone(_started_pids(text)["worker 0"]) and _gone(grandchild)


@pytest.mark.e2e
def test_the_timeout_stops_everything():
    out = io.StringIO()
    specs = [launch.ProcessSpec(f"worker {i}", _python(SLEEP), {}) for i in range(2)]
    assert launch.run_cluster(specs, timeout=1, output=out) == launch.TIMED_OUT
    assert all(_gone(pid) for pid in _started_pids(out.getvalue()).values())


def _launcher_with_a_sleeper():
    code = ("import sys\nfrom tftransfer.cli import launch\n"
            f"spec = launch.ProcessSpec('sleeper', [sys.executable, '-c', {SLEEP!r}], {{}})\n"
            "sys.exit(launch.run_cluster([spec]))")
    process = subprocess.Popen(_python(code), cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    return process, _started_pids(line)["sleeper"]


@pytest.mark.e2e
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 130), (signal.SIGINT, 130),
                                         (signal.SIGKILL, -signal.SIGKILL)])
def test_stopping_or_killing_the_launcher_stops_its_processes(sig, status):
    launcher, sleeper = _launcher_with_a_sleeper()
    try:
        assert not _gone(sleeper, within=0.5)
        launcher.send_signal(sig)
        assert launcher.wait(timeout=60) == status
        assert _gone(sleeper)  # after SIGKILL of the launcher: the child's parent-death signal
    finally:
        launcher.kill()
        launcher.wait()
        launcher.stdout.close()


def test_workers_get_one_tf_config_each_on_free_loopback_ports():
    specs = launch.worker_processes(3, ["--flagfile=x.flags", "--strategy=mirrored"])
    assert [s.name for s in specs] == ["worker 0", "worker 1", "worker 2"]
    configs = [json.loads(s.env[cluster.TF_CONFIG]) for s in specs]
    addresses = configs[0]["cluster"]["worker"]
    assert all(c["cluster"]["worker"] == addresses for c in configs)
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    for spec in specs:
        assert spec.argv[1:] == ["-m", "tftransfer.run", "--flagfile=x.flags",
                                 "--strategy=mirrored", "--strategy=multi_worker"]


def test_tuners_share_one_oracle_address():
    specs = launch.tuner_processes(2, ["--search=random"])
    assert [s.name for s in specs] == ["chief", "tuner0", "tuner1"]
    ports = {s.env[cluster.ORACLE_PORT] for s in specs}
    assert len(ports) == 1 and {s.env[cluster.ORACLE_IP] for s in specs} == {"127.0.0.1"}
    assert [s.env[cluster.TUNER_ID] for s in specs] == ["chief", "tuner0", "tuner1"]
    assert cluster.is_search_chief(specs[0].env) and cluster.is_tuner_worker(specs[1].env)


@pytest.mark.parametrize("argv", [["--workers=0"], ["--tuner_workers=-1"],
                                  ["--workers=2", "--tuner_workers=2"]])
def test_bad_process_counts_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        launch.main(argv)
    assert raised.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_ports_come_from_below_the_ephemeral_range_and_skip_taken_ones(tmp_path, monkeypatch):
    """No outgoing connection can take such a port as its source port before the process
    that is to listen on it has started."""
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("32768\t60999\n")
    monkeypatch.setattr(launch, "EPHEMERAL_RANGE", str(ephemeral))
    first = launch.free_ports(1, seed=7)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        ports = launch.free_ports(3, seed=7)
    assert first not in ports and len(set(ports)) == 3
    assert all(launch.LOWEST_PORT <= port < 32768 for port in ports)
    monkeypatch.setattr(launch, "EPHEMERAL_RANGE", str(tmp_path / "absent"))
    assert len(set(launch.free_ports(2))) == 2   # the kernel's choice, as before
