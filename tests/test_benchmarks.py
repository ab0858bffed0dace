"""Each benchmark runs in --quick mode and prints a ratio last (its value is not asserted)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script", ["feature_cache.py"])
def test_benchmark_quick_mode_prints_a_ratio(script, tmp_path):
    # Assets are built into a fresh cache under this HOME; the checkout is importable as is.
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), "--quick"],
                            capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+(\.\d+)?x$", last), last
