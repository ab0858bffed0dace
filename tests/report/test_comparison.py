"""The comparison of synthetic models (test_variants covers real ones)."""
import json

import pytest

from tftransfer.report import comparison
from tftransfer.report.format import Figure, Table, to_markdown

CORRUPTIONS = {"gaussian_noise": (0.04, 0.08, 0.16), "jpeg": (40, 20, 8)}


def _robustness(clean: float, drop: float) -> dict:
    attacks = [{"attack": a, "epsilon": e, "accuracy": max(0.0, clean - drop * e * 10)}
               for a in ("fgsm", "pgd") for e in (0.0, 0.01, 0.05)]
    corruptions = [{"corruption": name, "severity": s, "parameter": values[s - 1],
                    "accuracy": clean - 0.05 * s}
                   for name, values in CORRUPTIONS.items() for s in (1, 2, 3)]
    return {"split": "test", "examples": 60, "clean_accuracy": clean, "pgd_steps": 10,
            "reference_epsilon": 0.01, "robust_accuracy": clean - drop * 0.1,
            "mean_corruption_accuracy": clean - 0.1, "attacks": attacks,
            "corruptions": corruptions}


def _model_metrics(accuracy: float, ece: float, latency: float, megabytes: float,
                   drop: float) -> dict:
    return {"test": {"accuracy": accuracy, "expected_calibration_error": ece},
            "robustness": _robustness(accuracy, drop),
            "performance": {"saved_model": {"latency_ms_p50": latency},
                            "export_megabytes": megabytes}}


@pytest.fixture
def metrics():
    single = _model_metrics(0.9, 0.05, 2.0, 10.0, drop=3.0)
    single["ensemble"] = {"members": 3, **_model_metrics(0.93, 0.03, 6.0, 30.0, drop=2.5)}
    single["adversarial"] = {"attack": "pgd", "epsilon": 0.01,
                             **_model_metrics(0.88, 0.06, 2.0, 10.0, drop=1.0)}
    return single


def test_comparison_has_one_row_per_model(metrics):
    rows = comparison.rows(metrics)
    assert [r["model"] for r in rows] == ["single", "ensemble of 3", "adversarial (pgd, ε=0.01)"]
    assert [r["clean_accuracy"] for r in rows] == [0.9, 0.93, 0.88]
    assert [r["robust_accuracy"] for r in rows] == pytest.approx([0.6, 0.68, 0.78])
    assert [r["latency_ms_p50"] for r in rows] == [2.0, 6.0, 2.0]
    assert [r["export_megabytes"] for r in rows] == [10.0, 30.0, 10.0]
    assert [r["expected_calibration_error"] for r in rows] == [0.05, 0.03, 0.06]
    json.dumps(rows)  # metrics.json holds it


def test_report_blocks_render_the_comparison_tables_and_curves(metrics, tmp_path):
    metrics["comparison"] = comparison.rows(metrics)
    figures = comparison.report_figures(metrics)
    assert figures["robustness_curves"].startswith(b"\x89PNG")
    (tmp_path / "curves.png").write_bytes(figures["robustness_curves"])
    blocks = comparison.report_blocks(metrics, {"robustness_curves": "curves.png"})
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) == 3 and [row[0] for row in tables[0].rows] == [
        "single", "ensemble of 3", "adversarial (pgd, ε=0.01)"]
    assert len(tables[1].rows) == 6 and len(tables[2].rows) == 3 * len(CORRUPTIONS)
    assert isinstance(blocks[-1], Figure)
    text = to_markdown(blocks)
    assert "| single | 0.9 | 0.6 |" in text and "![Accuracy against" in text


def test_a_single_model_without_robustness_has_no_blocks():
    assert comparison.report_blocks({"test": {"accuracy": 0.9}}, {}) == []
    assert comparison.report_figures({"test": {"accuracy": 0.9}}) == {}


def _phase(seconds, epoch_seconds, val_accuracy):
    return {"seconds": seconds, "epoch_seconds": epoch_seconds,
            "history": {"val_accuracy": val_accuracy}}


def test_accuracy_over_time_runs_on_across_phases():
    phases = [_phase(10.0, [4.0, 9.5], [0.5, 0.6]), _phase(20.0, [8.0, 19.0], [0.7, 0.8])]
    assert comparison.accuracy_over_time(phases) == ([4.0, 9.5, 18.0, 29.0],
                                                     [0.5, 0.6, 0.7, 0.8])


def test_a_model_from_scratch_is_a_row_and_a_figure_against_time():
    pretrained = {"phases": [_phase(10.0, [5.0, 10.0], [0.8, 0.9])]}
    scratch = {"test": {"accuracy": 0.4},
               "training": {"phases": [_phase(30.0, [15.0, 30.0], [0.3, 0.4])]}}
    metrics = {"test": {"accuracy": 0.9}, "training": pretrained, "scratch": scratch}
    table = comparison.rows(metrics)
    assert [(r["model"], r["clean_accuracy"], r["training_seconds"]) for r in table] == [
        ("single", 0.9, 10.0), ("from scratch", 0.4, 30.0)]
    figures = comparison.report_figures(metrics)
    assert set(figures) == {"transfer_gain"} and figures["transfer_gain"][:4] == b"\x89PNG"
    blocks = comparison.report_blocks(metrics, {"transfer_gain": "report_files/t.png"})
    assert any(isinstance(b, Figure) and b.path == "report_files/t.png" for b in blocks)
