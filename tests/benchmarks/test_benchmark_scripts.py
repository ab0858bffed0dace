"""Each benchmark runs in --quick mode and prints its ratio last (its value is not asserted)."""
import concurrent.futures
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.e2e

# Longest first: the smoke runs go two at a time (much of each is single-threaded tracing).
SCRIPTS = ["quickstart", "budget", "peers", "strategy", "serving", "pipeline", "search",
           "recipe", "feature_cache", "overhead", "compute_efficiency"]


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory) -> dict:
    """An environment whose HOME holds freshly built offline assets (built once, ~30 s)."""
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ, HOME=str(home), PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-m", "tftransfer.assets"], check=True, env=env, cwd=REPO,
                   capture_output=True, timeout=900)
    return env


@pytest.fixture(scope="module")
def quick_runs(fresh_home) -> dict[str, concurrent.futures.Future]:
    def run(name):
        return subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", f"{name}.py"),
                               "--quick"], capture_output=True, text=True, timeout=900,
                              env=fresh_home, cwd=REPO)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(run, name) for name in SCRIPTS}


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_quick_mode_prints_its_ratio_last(name, quick_runs):
    result = quick_runs[name].result()
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("machine: "), lines[0]
    assert re.fullmatch(rf"{name}: \d+(\.\d+)?x", lines[-1]), lines[-1]


def test_every_benchmark_script_is_tested():
    found = {f[:-3] for f in os.listdir(os.path.join(REPO, "benchmarks"))
             if f.endswith(".py") and not f.startswith("_")}
    assert found == set(SCRIPTS)
