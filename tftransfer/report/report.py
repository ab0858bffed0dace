"""The report stage: `<output_dir>/report.md` and `report.html` from the run's own files.

Reads config.json, metrics.json and, when present, search.json and compression.json, so a
report can be rebuilt from a finished output folder
(`python -m tftransfer.report --output_dir=DIR`). Figures are PNGs in `report_files/`;
the HTML embeds them and stands alone.
"""
from __future__ import annotations

import os
from typing import Mapping

from tftransfer.config import run_config as config_lib
from tftransfer.config.errors import UserError
from tftransfer.outputs import files as atomic, run_folder
from tftransfer.export import layout
from tftransfer.report import comparison, compression_table, model_card, plots
from tftransfer.report.format import Figure, Heading, Paragraph, Table, to_html, to_markdown

FIGURE_FOLDER = run_folder.REPORT_FILES
_METRIC_COLUMNS = (("accuracy", "accuracy"), ("top5_accuracy", "top-5"),
                   ("balanced_accuracy", "balanced"), ("macro_f1", "macro-F1"),
                   ("weighted_f1", "weighted-F1"),
                   ("auc_roc_macro_ovr", "AUC-ROC"), ("expected_calibration_error", "ECE"),
                   ("loss", "loss"), ("num_examples", "examples"))


def _depth_text(depth: int) -> str:
    return {0: "none (frozen)", -1: "all"}.get(depth, f"top {depth}")


def _read_json(output_dir: str, name: str) -> dict | None:
    return atomic.read_json(os.path.join(output_dir, name))


def _sample_title(label, class_names) -> str:
    """A training sample's class; a mixed one's (mixup, cutmix) two largest shares."""
    if not hasattr(label, "__len__"):
        return class_names[int(label)]
    shares = [float(share) for share in label]
    top = sorted(range(len(shares)), key=lambda k: -shares[k])[:2]
    return " / ".join(f"{class_names[k]} {shares[k]:.0%}" for k in top if shares[k] > 0.005)


def run_figures(metrics: Mapping, class_names, augmented_images=None, augmented_labels=None):
    """{name: PNG bytes}: learning curves, the confusion matrix of the test split (else
    validation), its ROC curves, the reliability diagram of --calibrate and, given a
    training batch, a grid of augmented samples."""
    figures = {}
    phases = metrics.get("training", {}).get("phases", [])
    if phases:
        figures["learning_curves"] = plots.learning_curves(phases)
    split = "test" if "test" in metrics else "validation" if "validation" in metrics else None
    if split:
        figures["confusion_matrix"] = plots.confusion_matrix(
            metrics[split]["confusion_matrix"], class_names)
    if "lr_find" in metrics:
        found = metrics["lr_find"]
        figures["learning_rate_range"] = plots.learning_rate_range(
            found["rates"], found["losses"], found["suggested_learning_rate"])
    if metrics.get("roc_curves", {}).get("macro"):
        figures["roc_curves"] = plots.roc_curves(metrics["roc_curves"])
    if "calibration" in metrics:
        reliability = metrics["calibration"]["reliability"]
        figures["reliability_diagram"] = plots.reliability_diagram(reliability["before"],
                                                                   reliability["after"])
    if augmented_images is not None:
        title = _title if "multi_label" in metrics else _sample_title  # multi-hot or mixed
        titles = [title(label, class_names) for label in augmented_labels]
        figures["augmented_samples"] = plots.image_grid(augmented_images[:32], titles)
    figures.update(comparison.report_figures(metrics))
    return figures


def _title(label, class_names) -> str:
    """A sample's class, or a multi-hot label's names joined by spaces."""
    if getattr(label, "ndim", 0) == 1:
        return " ".join(name for name, hot in zip(class_names, label) if hot > 0.5)
    return class_names[int(label)]


_MULTI_LABEL_COLUMNS = (("mean_average_precision", "mAP"), ("micro_f1", "micro-F1"),
                        ("macro_f1", "macro-F1"), ("auc_roc_macro", "AUC-ROC"),
                        ("exact_match", "exact match"), ("loss", "loss"),
                        ("num_examples", "examples"))


def _multi_label_blocks(block: Mapping) -> list:
    """A --labels_csv run's scores: each split at the per-label thresholds, and per label."""
    splits = [s for s in ("validation", "test") if s in block]
    blocks = [Heading("Multi-label metrics"),
              Paragraph(f"A sigmoid per label; each label's threshold maximises its F1 on "
                        f"the {block['thresholds_from']} split and is baked into the export. "
                        f"mAP is the mean over labels of the average precision."),
              Table(["split"] + [label for _, label in _MULTI_LABEL_COLUMNS],
                    [[s] + [block[s].get(key) for key, _ in _MULTI_LABEL_COLUMNS]
                     for s in splits])]
    if splits:
        blocks += [Paragraph(f"Per label ({splits[-1]} split):"),
                   Table(["label", "threshold", "average precision", "AUC-ROC", "precision",
                          "recall", "F1", "support"],
                         [(r["label"], r["threshold"], r["average_precision"], r["auc_roc"],
                           r["precision"], r["recall"], r["f1"], r["support"])
                          for r in block[splits[-1]]["per_label"]])]
    return blocks


def _changed_flags(saved_config: Mapping) -> list[tuple]:
    defaults = config_lib.to_flat(config_lib.RunConfig())
    values = {k: v for k, v in saved_config.items() if not isinstance(v, dict)}
    for section in config_lib.SECTIONS:
        values.update(saved_config.get(section, {}))
    normal = lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return [(f"--{name}", normal(values[name]), normal(default) if default != "" else "(none)")
            for name, default in defaults.items()
            if name in values and normal(values[name]) != normal(default)]


def _data_blocks(data: Mapping, class_names) -> list:
    splits = [s for s in ("train", "validation", "test") if s in data["sizes"]]
    skipped = data.get("skipped") or {}
    blocks = [Heading("Data"),
              Table(["split", "examples"], [(s, data["sizes"][s]) for s in splits]),
              Paragraph("Skipped files: " + (", ".join(f"{n} {reason}" for reason, n in
                                                       sorted(skipped.items())) or "none") + ".")]
    counts = data.get("class_counts") or {}
    if counts and class_names:
        splits = [s for s in splits if s in counts]
        blocks.append(Table(["class"] + splits,
                            [[name] + [counts[s][k] for s in splits]
                             for k, name in enumerate(class_names)]))
    return blocks


def _search_blocks(search: Mapping) -> list:
    rows = [(rank + 1, t["trial_id"], t["status"], t["score"], t["seconds"],
             ", ".join(f"{k}={v}" for k, v in sorted(t["hyperparameters"].items())
                       if not k.startswith("tuner/")))
            for rank, t in enumerate(search["trials"])]
    return [Heading("Search ranking"),
            Paragraph(f"{search['tuner']} search, objective {search['objective']}, "
                      f"{len(rows)} trials, prior regime {search.get('prior')}."),
            Table(["rank", "trial", "status", "score", "seconds", "hyperparameters"], rows),
            *_decision_blocks(search)]


def _decision_blocks(search: Mapping) -> list:
    decision = search.get("do_no_harm")
    if not decision:
        return []
    kept = ("the starting point" if decision["kept"] == "start"
            else f"trial {search.get('chosen_trial')}, the best")
    return [Paragraph(f"Do no harm: trained {kept}. The best trial scored "
                      f"{decision['best_score']}, the starting point "
                      f"{' and '.join(map(str, decision['start_scores']))}; margin "
                      f"{decision['margin']:+} against noise {decision['noise']}.")]


def _warm_start_blocks(warm_start: Mapping | None) -> list:
    if not warm_start:
        return []
    outcome = ("no epoch beat it, so its weights are the model" if warm_start["kept"]
               else "a later epoch beat it")
    return [Paragraph(f"The final training started from trial {warm_start['trial_id']}'s "
                      f"best epoch (validation accuracy "
                      f"{warm_start['validation_accuracy']:.4g}); {outcome}.")]


def _budget_blocks(budget: Mapping) -> list:
    plan = budget["plan"]
    rows = [(stage, seconds["estimated"], seconds["actual"])
            for stage, seconds in budget["stages"].items()]
    rows.append(("total", budget["budget_seconds"], budget["spent_seconds"]))
    searched = (f"{plan['trials']} trials planned, {plan['trial_epochs']} epochs each on "
                f"{plan['search_fraction']:.0%} of the training split" if plan["trials"]
                else f"no search: {plan['why']}")
    return [Heading("Time budget"),
            Paragraph(f"Budget {budget['budget_seconds']:.0f} s over {budget['attempts']} "
                      f"attempt(s); {searched}; final training {budget['final_epochs']} "
                      f"epochs."),
            Table(["stage", "estimated (s)", "actual (s)"], rows)]


def _metric_blocks(metrics: Mapping) -> list:
    splits = [s for s in ("validation", "test") if s in metrics]
    blocks = [Heading("Metrics"),
              Table(["split"] + [label for _, label in _METRIC_COLUMNS],
                    [[s] + [metrics[s].get(key) for key, _ in _METRIC_COLUMNS]
                     for s in splits])]
    if splits:
        per_class = metrics[splits[-1]]["per_class"]
        blocks += [Paragraph(f"Per class ({splits[-1]} split):"),
                   Table(["class", "precision", "recall", "F1", "support"],
                         [(c["class"], c["precision"], c["recall"], c["f1"], c["support"])
                          for c in per_class])]
    return blocks


def _tta_blocks(tta: Mapping) -> list:
    rows = [(split, tta[split]["accuracy_without_tta"], tta[split]["accuracy"],
             tta[split]["loss_without_tta"], tta[split]["loss"])
            for split in ("validation", "test") if split in tta]
    return [Heading("Test-time augmentation"),
            Paragraph(f"--tta={tta['mode']}: each image's probabilities are averaged with its "
                      f"horizontal mirror's. The metrics above are those averages."),
            Table(["split", "accuracy without", "accuracy with", "loss without",
                   "loss with"], rows)]


def _calibration_blocks(calibration: Mapping) -> list:
    rows = [(split, *(calibration[split][f"{key}_{when}"] for key in ("ece", "nll", "accuracy")
                      for when in ("before", "after")))
            for split in ("validation", "test") if split in calibration]
    return [Heading("Calibration"),
            Paragraph(f"Temperature scaling: the logits are divided by T = "
                      f"{calibration['temperature']:.4g}, fitted on the "
                      f"{calibration['fitted_on']} split, in the evaluated and exported "
                      f"model. The metrics above are the calibrated model's; the argmax, "
                      f"hence the accuracy, is unchanged."),
            Table(["split", "ECE before", "ECE after", "NLL before", "NLL after",
                   "accuracy before", "accuracy after"], rows)]


def _performance_blocks(performance: Mapping) -> list:
    rows = [(f"training, phase {phase}", "throughput (images/s)", value)
            for phase, value in performance.get("training_images_per_second", {}).items()]
    for model in ("keras_model", "saved_model"):
        for key, value in performance.get(model, {}).items():
            rows.append((model.replace("_", " "), key, value))
    rows += [("parameters", key, value) for key, value in
             performance.get("parameters", {}).items()]
    rows += [("export", "size (MB)", performance.get("export_megabytes")),
             ("host", "peak memory (MB)", performance.get("peak_host_memory_megabytes"))]
    return [Heading("Performance"), Paragraph(f"Device: {performance.get('device')}."),
            Table(["what", "measure", "value"], rows)]


def _compression_blocks(compression: Mapping) -> list:
    if not compression.get("variants"):
        return []
    header, rows = compression_table.table(compression)
    return [Heading("Compression"), Table(header, rows),
            *map(Paragraph, compression_table.notes(compression))]


def _blocks(output_dir: str, figure_paths: Mapping[str, str]) -> list:
    saved_config = _read_json(output_dir, run_folder.CONFIG_JSON)
    metrics = _read_json(output_dir, run_folder.METRICS_JSON)
    class_names = metrics.get("class_names", [])
    figure = lambda name, caption: ([Figure(figure_paths[name], caption)]  # noqa: E731
                                    if name in figure_paths else [])
    scored = metrics.get("multi_label", metrics)
    score_name = "mAP" if "multi_label" in metrics else "accuracy"
    test_accuracy = scored.get("test", scored.get("validation", {})).get(
        "mean_average_precision" if "multi_label" in metrics else "accuracy")
    blocks = [Heading("tftransfer run report", 1),
              Paragraph(f"Dataset {saved_config['data']['dataset']}, backbone "
                        f"{saved_config['backbone']['hub_handle']}; {score_name} "
                        f"{test_accuracy if test_accuracy is None else f'{test_accuracy:.4f}'}"
                        f" on the {'test' if 'test' in scored else 'validation'} split."),
              Heading("Configuration"),
              Table(["flag", "value", "default"], _changed_flags(saved_config))]
    if saved_config.get("chosen_hyperparameters"):
        blocks += [Paragraph("Chosen by the search:"),
                   Table(["hyperparameter", "value"],
                         sorted(saved_config["chosen_hyperparameters"].items()))]
    blocks += _data_blocks(metrics["data"], class_names)
    blocks += figure("augmented_samples", "Augmented training samples")
    search = _read_json(output_dir, run_folder.SEARCH_JSON)
    if search:
        blocks += _search_blocks(search)
    if "budget" in metrics:
        blocks += _budget_blocks(metrics["budget"])
    phases = metrics.get("training", {}).get("phases", [])
    averaged = any(p.get("ema_momentum") for p in phases)
    blocks += [Heading("Training"),
               Table(["phase", "fine-tuned blocks", "epochs", "seconds", "images/s"]
                     + (["weights' average (momentum)"] if averaged else []),
                     [(p["name"], _depth_text(p.get("fine_tune_depth", 0)), p["epochs"],
                       p["seconds"], p["images_per_second"])
                      + ((p.get("ema_momentum"),) if averaged else ()) for p in phases])]
    blocks += _warm_start_blocks(metrics.get("training", {}).get("warm_start"))
    if "lr_find" in metrics:
        blocks += figure("learning_rate_range", "Learning-rate range test (--learning_rate="
                         f"find): {metrics['lr_find']['suggested_learning_rate']:.2g} used")
    blocks += figure("learning_curves", "Learning curves (dotted: start of fine-tuning)")
    blocks += (_multi_label_blocks(metrics["multi_label"]) if "multi_label" in metrics
               else _metric_blocks(metrics))
    blocks += figure("confusion_matrix", "Confusion matrix (row-normalised)")
    if "tta" in metrics:
        blocks += _tta_blocks(metrics["tta"])
    if "roc_curves" in metrics:
        blocks += figure("roc_curves", f"One-vs-rest ROC curves ({metrics['roc_curves']['split']}"
                                       f" split; AUC in brackets)")
    if "calibration" in metrics:
        blocks += _calibration_blocks(metrics["calibration"])
        blocks += figure("reliability_diagram", "Reliability diagram before and after "
                         f"temperature scaling ({metrics['calibration']['reliability']['split']}"
                         " split)")
    if "performance" in metrics:
        blocks += _performance_blocks(metrics["performance"])
    blocks += comparison.report_blocks(metrics, figure_paths)
    blocks += _compression_blocks(_read_json(output_dir, run_folder.COMPRESSION_JSON) or {})
    return blocks


def write_report(output_dir: str, figures: Mapping[str, bytes]) -> tuple[str, str]:
    """Writes the figures, report.md and report.html; returns the two report paths."""
    os.makedirs(os.path.join(output_dir, FIGURE_FOLDER), exist_ok=True)
    paths = {}
    for name, png in figures.items():
        paths[name] = f"{FIGURE_FOLDER}/{name}.png"
        atomic.write_bytes(os.path.join(output_dir, paths[name]), png)
    blocks = _blocks(output_dir, paths)
    markdown_path = os.path.join(output_dir, run_folder.REPORT_MD)
    html_path = os.path.join(output_dir, run_folder.REPORT_HTML)
    atomic.write_text(markdown_path, to_markdown(blocks))
    atomic.write_text(html_path, to_html(blocks, output_dir, "tftransfer run report"))
    return markdown_path, html_path


def rebuild(output_dir: str) -> tuple[str, str]:
    """Re-renders the report and the model cards of a finished run (e.g. after
    compression.json was added), keeping the augmented-sample grid it already has."""
    metrics = _read_json(output_dir, run_folder.METRICS_JSON)
    if metrics is None or _read_json(output_dir, run_folder.CONFIG_JSON) is None:
        raise UserError(f"--output_dir: no metrics.json and config.json in {output_dir}")
    figures = run_figures(metrics, metrics.get("class_names", []))
    samples = os.path.join(output_dir, FIGURE_FOLDER, "augmented_samples.png")
    if os.path.isfile(samples):
        with open(samples, "rb") as f:
            figures["augmented_samples"] = f.read()
    paths = write_report(output_dir, figures)
    model_card.write_model_cards(output_dir, _run_export(output_dir))
    return paths


def _run_export(output_dir: str) -> str | None:
    """The run's SavedModel version folder: its --export_version, else (0: the next free
    one when it ran) the highest present; None without one."""
    exports = os.path.join(output_dir, run_folder.SAVED_MODEL)
    version = _read_json(output_dir, run_folder.CONFIG_JSON)["export"]["export_version"]
    versions = layout.versions(exports)
    if not version and versions:
        version = versions[-1]
    return os.path.join(exports, str(version)) if version else None
