"""The side-by-side comparison of a run's models (the main one, the ensemble, the
adversarially fine-tuned copy, the same model from scratch): the `comparison` list of
metrics.json, the robustness curves, accuracy against training time, and the report blocks. Reads metrics only; imports no TensorFlow.
"""
from __future__ import annotations

from typing import Mapping

from tftransfer.report import plots
from tftransfer.report.format import Figure, Heading, Paragraph, Table

VARIANTS = ("ensemble", "adversarial", "scratch")   # metrics.json blocks, in the order shown


def _label(name: str, block: Mapping) -> str:
    if name == "ensemble":
        return f"ensemble of {block['members']}"
    if name == "adversarial":
        return f"adversarial ({block['attack']}, ε={block['epsilon']:g})"
    if name == "scratch":
        return "from scratch"
    return "single"


def _models(metrics: Mapping) -> list[tuple[str, Mapping]]:
    """[(label, block)]: the main model (the top level of metrics.json), then variants."""
    found = [(_label("single", metrics), metrics)]
    return found + [(_label(name, metrics[name]), metrics[name])
                    for name in VARIANTS if name in metrics]


def _training_seconds(block: Mapping) -> float | None:
    """The model's own training time; None for a model made without one (the ensemble)."""
    phases = block.get("training", {}).get("phases")
    return round(sum(p["seconds"] for p in phases), 1) if phases else None


def rows(metrics: Mapping) -> list[dict]:
    """One row per model: clean and robust accuracy, calibration, latency, size."""
    rows = []
    for label, block in _models(metrics):
        split = "test" if "test" in block else "validation"
        scores, robust = block.get(split, {}), block.get("robustness", {})
        speed = block.get("performance", {})
        rows.append({"model": label, "split": split, "clean_accuracy": scores.get("accuracy"),
                     "robust_accuracy": robust.get("robust_accuracy"),
                     "robust_epsilon": robust.get("reference_epsilon"),
                     "corruption_accuracy": robust.get("mean_corruption_accuracy"),
                     "expected_calibration_error": scores.get("expected_calibration_error"),
                     "training_seconds": _training_seconds(block),
                     "latency_ms_p50": speed.get("saved_model", {}).get("latency_ms_p50"),
                     "export_megabytes": speed.get("export_megabytes")})
    return rows


def _robust_models(metrics: Mapping) -> dict[str, Mapping]:
    return {label: block["robustness"] for label, block in _models(metrics)
            if "robustness" in block}


def accuracy_over_time(phases: list[dict]) -> tuple[list[float], list[float]]:
    """(seconds since the training began, validation accuracy) at each epoch's end."""
    seconds, accuracy, before = [], [], 0.0
    for phase in phases:
        ends = phase.get("epoch_seconds") or []
        values = phase["history"].get("val_accuracy", [])
        seconds += [before + end for end in ends[:len(values)]]
        accuracy += values[:len(ends)]
        before += phase["seconds"]
    return seconds, accuracy


def report_figures(metrics: Mapping) -> dict[str, bytes]:
    """{"robustness_curves": PNG} when any model was evaluated for robustness, and
    {"transfer_gain": PNG} with a model trained from scratch."""
    figures = {}
    models = _robust_models(metrics)
    if models:
        figures["robustness_curves"] = plots.robustness_curves(models)
    if "scratch" in metrics:
        curves = {"pretrained": accuracy_over_time(metrics["training"]["phases"]),
                  "from scratch": accuracy_over_time(metrics["scratch"]["training"]["phases"])}
        figures["transfer_gain"] = plots.accuracy_over_time(curves)
    return figures


_COMPARISON_COLUMNS = (("model", "model"), ("clean_accuracy", "clean accuracy"),
                       ("robust_accuracy", "PGD accuracy"), ("robust_epsilon", "at ε"),
                       ("corruption_accuracy", "corruption accuracy"),
                       ("expected_calibration_error", "ECE"),
                       ("training_seconds", "training (s)"),
                       ("latency_ms_p50", "latency p50 (ms)"), ("export_megabytes", "size (MB)"))


def _attack_table(models: Mapping[str, Mapping]) -> list:
    labels, first = list(models), next(iter(models.values()))
    accuracy = {label: {(a["attack"], a["epsilon"]): a["accuracy"] for a in r["attacks"]}
                for label, r in models.items()}
    return [Paragraph(f"Accuracy under attack ({first['examples']} images; PGD with "
                      f"{first['pgd_steps']} steps; ε in [0, 1] pixel units):"),
            Table(["attack", "ε"] + labels,
                  [[name, epsilon] + [accuracy[label].get((name, epsilon)) for label in labels]
                   for name, epsilon in sorted(accuracy[labels[0]])])]


def _corruption_table(models: Mapping[str, Mapping]) -> list:
    labels, first = list(models), next(iter(models.values()))
    accuracy = {label: {(c["corruption"], c["severity"]): c["accuracy"]
                        for c in r["corruptions"]} for label, r in models.items()}
    return [Paragraph("Accuracy under common corruptions:"),
            Table(["corruption", "severity", "parameter"] + labels,
                  [[c["corruption"], c["severity"], c["parameter"]]
                   + [accuracy[label].get((c["corruption"], c["severity"])) for label in labels]
                   for c in first["corruptions"]])]


def report_blocks(metrics: Mapping, figure_paths: Mapping[str, str]) -> list:
    """The comparison table, accuracy under attack and corruption per model, the
    robustness curves and accuracy against training time (figure_paths: figure name -> path relative to the report); nothing
    for a lone model evaluated without --robustness_eval."""
    table = metrics.get("comparison") or rows(metrics)
    models = _robust_models(metrics)
    if len(table) < 2 and not models:
        return []
    blocks = [Heading("Model comparison"),
              Paragraph(f"Clean accuracy and calibration on the {table[0]['split']} split; "
                        "latency at batch 1 through the SavedModel; robust accuracy under PGD "
                        "on the first images of that split."),
              Table([label for _, label in _COMPARISON_COLUMNS],
                    [[row.get(key) for key, _ in _COMPARISON_COLUMNS] for row in table])]
    if models:
        blocks += _attack_table(models) + _corruption_table(models)
    if "robustness_curves" in figure_paths:
        blocks.append(Figure(figure_paths["robustness_curves"],
                             "Accuracy against attack size and corruption severity"))
    if "transfer_gain" in figure_paths:
        blocks.append(Figure(figure_paths["transfer_gain"], "Validation accuracy against "
                             "training time: pretrained backbone and from scratch"))
    return blocks
