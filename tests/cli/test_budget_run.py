"""`--time_budget` end to end: the CLI plans, searches, trains and exports within it, and a
budget too small for one epoch is refused before training."""
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, TESTS

pytestmark = pytest.mark.e2e

SLACK = 1.10  # the promise: the run ends within its budget + 10 %


def _flags(tiny_hub_dir, color_folder, output_dir, budget, image_size=24):
    return [f"--dataset={color_folder}", f"--hub_handle={tiny_hub_dir}",
            f"--image_size={image_size}",
            "--batch_size=16", f"--time_budget={budget}", f"--output_dir={output_dir}",
            "--warmup_requests=2"]


def _cli(args, timeout=900):
    return subprocess.run([sys.executable, "-m", "tftransfer.run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _json(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory, tiny_hub_dir, color_folder):
    out = tmp_path_factory.mktemp("budgeted") / "run"
    start = time.monotonic()
    # No --image_size: the search tries sizes from the images' own 44 px up to 224 px.
    result = _cli(_flags(tiny_hub_dir, color_folder, out, "100s", image_size=0))
    wall = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    return out, wall, result.stderr


def test_a_budgeted_run_searches_and_ends_within_its_budget(budgeted):
    out, wall, log = budgeted
    assert wall <= 100 * SLACK
    budget = _json(out, "metrics.json")["budget"]
    assert budget["budget_seconds"] == 100 and budget["spent_seconds"] <= 100 * SLACK
    assert budget["plan"]["trials"] >= 2           # searched: no --search was given
    assert set(budget["stages"]) >= {"start-up", "search", "final training",
                                     "evaluation and export"}
    assert all(s["actual"] > 0 for s in budget["stages"].values())
    assert "Time budget 100s:" in log and "Time budget: " in log  # the plan, then the account


def test_the_search_is_within_its_share_and_records_the_do_no_harm_decision(budgeted):
    out, _, log = budgeted
    search = _json(out, "search.json")
    decision = search["do_no_harm"]
    assert decision["kept"] in ("start", "best") and "do no harm:" in log
    chosen = next(t for t in search["trials"] if t["trial_id"] == search["chosen_trial"])
    assert _json(out, "config.json")["chosen_hyperparameters"] == chosen["hyperparameters"]
    budget = _json(out, "metrics.json")["budget"]
    # A trial that starts before the share ends may run past it, by about one trial.
    overrun = budget["stages"]["search"]["actual"] - budget["plan"]["search"]
    assert overrun <= max(10.0, 2 * budget["plan"]["trial_seconds"])


def test_an_open_resolution_is_searched_and_the_final_training_follows_the_choice(budgeted):
    out, _, _ = budgeted
    search = _json(out, "search.json")
    assert "image_size=Choice(values=(224, 64, 128))" in search["space"]
    tried = {t["hyperparameters"]["image_size"] for t in search["trials"]}
    assert tried <= {224, 64, 128} and len(tried) >= 2
    config = _json(out, "config.json")
    size = config["data"]["image_size"]
    assert size == config["chosen_hyperparameters"]["image_size"]
    budget = _json(out, "metrics.json")["budget"]
    assert set(budget["step_times"]["scale"]) == {"224", "64", "128"}
    assert budget["plan"]["image_size"] in (224, 64, 128)


def test_the_report_shows_the_budget(budgeted):
    out, _, _ = budgeted
    text = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "## Time budget" in text and "| final training |" in text
    assert "Do no harm: trained" in text


def test_a_budget_too_small_for_one_epoch_is_one_line_before_training(tmp_path, tiny_hub_dir,
                                                                      color_folder):
    result = _cli(_flags(tiny_hub_dir, color_folder, tmp_path / "run", "2s"))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --time_budget: 2s cannot hold one training epoch here")
    assert "the smallest budget that fits is about" in last
    assert not os.path.exists(tmp_path / "run" / "saved_model")


def test_a_resumed_run_is_charged_the_time_already_spent(tmp_path, tiny_hub_dir,
                                                         color_folder):
    out = tmp_path / "run"
    args = _flags(tiny_hub_dir, color_folder, out, "150s")
    marker = tmp_path / "paused"
    process = subprocess.Popen(
        [sys.executable, os.path.join(TESTS, "run_until_paused.py"), "trial", "2",
         str(marker), *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600  # a hang guard
        while not marker.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)  # the ledger is written at least once a second while paused? no:
    finally:
        process.kill()
        process.wait()
    first = _json(out, "budget.json")
    assert first["spent"] > 0 and not first["finished"]
    result = _cli(args)
    assert result.returncode == 0, result.stderr[-3000:]
    budget = _json(out, "metrics.json")["budget"]
    assert budget["attempts"] == 2
    assert budget["spent_seconds"] >= first["spent"]
    assert budget["plan"] == first["notes"]["plan"]  # the first attempt's plan is followed
    assert "Time budget 150s:" in result.stderr
