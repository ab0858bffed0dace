"""model_card.md: what a model is, what it was trained on, how well it does (with 95 %
intervals) and where it should not be trusted, for whoever picks up an export.

`build` is a pure function of a run's files' contents (config.json, metrics.json and, when
present, search.json and the backbone's provenance.json); `write_model_cards` reads them,
writes `<output_dir>/model_card.md` and copies the card into each export's assets/ folder.
Variants (the ensemble, the adversarially fine-tuned copy) get a card of their own in their
export, from their metrics.json block. No TensorFlow here.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from tftransfer.export.layout import is_saved_model
from tftransfer.outputs import files as atomic, run_folder
from tftransfer.report import intervals
from tftransfer.report.format import Heading, Paragraph, Table, to_markdown

VARIANTS = ("ensemble", "adversarial")   # metrics.json blocks that carry an export_dir
# Thresholds of the limitations the card points out.
IMBALANCE_RATIO = 3.0           # largest / smallest training class
FEW_EXAMPLES = 50               # training images of a class
SMALL_EVALUATION = 1000         # images of the split the metrics come from
POOR_CALIBRATION = 0.05         # ECE


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _interval(low: float, high: float) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}] %"


def _evaluated_split(metrics: Mapping) -> str | None:
    return next((s for s in ("test", "validation") if s in metrics), None)


def _model_blocks(config: Mapping, metrics: Mapping, backbone: Mapping | None,
                  variant: str | None) -> list:
    handle = config["backbone"]["hub_handle"]
    facts = backbone or {}
    head, size = config["head"], config["data"]["image_size"]
    units = head["head_units"]
    hidden = (f"hidden layers of {', '.join(map(str, units))} units" if units
              else "no hidden layer")
    lines = [f"Backbone: `{handle}`"
             + (f", {facts['name']}" if facts.get("name") else "") + ".",
             f"Provenance: {facts.get('source', 'not recorded with the backbone')}.",
             f"Licence of the backbone's weights: {facts.get('licence') or 'unknown'}.",
             f"Head: {hidden}, dropout {head['dropout']}, then "
             + (f"a sigmoid per label over {len(metrics.get('class_names', []))} labels, "
                f"each with its own threshold in the export" if "multi_label" in metrics
                else f"a softmax over {len(metrics.get('class_names', []))} classes")
             + f"; input {size} x {size} RGB images."]
    if variant == "ensemble":
        block = metrics.get("ensemble", {})
        lines.append(f"This export is the ensemble: {block.get('members')} models averaged "
                     f"(the final one and search trials {', '.join(block.get('trial_ids', []))}).")
    elif variant == "adversarial":
        block = metrics.get("adversarial", {})
        lines.append(f"This export is the adversarially fine-tuned copy ({block.get('attack')}, "
                     f"epsilon {block.get('epsilon')}, {block.get('epochs')} epoch(s)).")
    return [Heading("Model"), *map(Paragraph, lines)]


def _data_blocks(config: Mapping, metrics: Mapping) -> list:
    data = metrics.get("data", {})
    sizes = data.get("sizes", {})
    splits = [s for s in ("train", "validation", "test") if s in sizes]
    blocks = [Heading("Data"),
              Paragraph(f"Dataset: `{config['data']['dataset']}`; "
                        + "; ".join(f"{s} {sizes[s]} images" for s in splits) + ".")]
    counts, names = data.get("class_counts") or {}, metrics.get("class_names", [])
    counted = [s for s in splits if s in counts]
    if counted and names:
        blocks.append(Table(["class"] + counted,
                            [[name] + [counts[s][k] for s in counted]
                             for k, name in enumerate(names)]))
    skipped = data.get("skipped") or {}
    if skipped:
        blocks.append(Paragraph("Skipped files: " + ", ".join(
            f"{n} {reason}" for reason, n in sorted(skipped.items())) + "."))
    return blocks


def _metric_rows(scores: Mapping) -> list[tuple]:
    n = scores["num_examples"]
    correct = int(np.trace(np.asarray(scores["confusion_matrix"])))
    rows = [("accuracy", _percent(scores["accuracy"]), _interval(*intervals.wilson(correct, n)),
             "Wilson score")]
    rows.append(("macro-F1", _percent(scores["macro_f1"]),
                 _interval(*intervals.macro_f1(scores["confusion_matrix"])),
                 f"bootstrap, {intervals.BOOTSTRAP_DRAWS} resamples"))
    if scores.get("balanced_accuracy") is not None:
        rows.append(("balanced accuracy", _percent(scores["balanced_accuracy"]), "", ""))
    if scores.get("top5_accuracy") is not None:
        rows.append(("top-5 accuracy", _percent(scores["top5_accuracy"]), "", ""))
    return rows


def _multi_label_metric_blocks(block: Mapping) -> list:
    rows = [(split, *(block[split][key] for key in ("mean_average_precision", "micro_f1",
                                                    "macro_f1", "auc_roc_macro")),
             block[split]["num_examples"])
            for split in ("test", "validation") if split in block]
    return [Heading("Metrics"),
            Paragraph(f"Multi-label, at per-label thresholds chosen on the "
                      f"{block['thresholds_from']} split:"),
            Table(["split", "mAP", "micro-F1", "macro-F1", "AUC-ROC", "images"], rows)]


def _metric_blocks(metrics: Mapping) -> list:
    if "multi_label" in metrics:
        return _multi_label_metric_blocks(metrics["multi_label"])
    blocks = [Heading("Metrics")]
    for split in ("test", "validation"):
        if split in metrics:
            scores = metrics[split]
            blocks += [Paragraph(f"{split.capitalize()} split, {scores['num_examples']} "
                                 f"images (95 % intervals):"),
                       Table(["metric", "value", "95 % interval", "method"],
                             _metric_rows(scores))]
    split = _evaluated_split(metrics)
    if split is None:
        return blocks + [Paragraph("No validation or test split was evaluated.")]
    per_class = metrics[split].get("per_class", [])
    if per_class:
        blocks += [Paragraph(f"Per class ({split} split):"),
                   Table(["class", "precision", "recall", "F1", "support"],
                         [(c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}",
                           f"{c['f1']:.3f}", c["support"]) for c in per_class])]
    return blocks


def _calibration_blocks(metrics: Mapping) -> list:
    split = _evaluated_split(metrics)
    ece = None if split is None else metrics[split].get("expected_calibration_error")
    if ece is None:
        return []
    return [Heading("Calibration"),
            Paragraph(f"Expected calibration error on the {split} split: {ece:.4f} (15 "
                      f"equal-width confidence bins; 0 means the top probability matches the "
                      f"accuracy at every confidence).")]


def _robustness_blocks(metrics: Mapping) -> list:
    r = metrics.get("robustness")
    if not r:
        return []
    return [Heading("Robustness"),
            Paragraph(f"On {r['examples']} {r['split']} images: clean accuracy "
                      f"{_percent(r['clean_accuracy'])}; under PGD ({r['pgd_steps']} steps, "
                      f"epsilon {r['reference_epsilon']} in [0, 1] pixel units) "
                      f"{_percent(r['robust_accuracy'])}; mean over common corruptions "
                      f"{_percent(r['mean_corruption_accuracy'])}."),
            Table(["attack", "epsilon", "accuracy"],
                  [(a["attack"], a["epsilon"], _percent(a["accuracy"]))
                   for a in r.get("attacks", [])])]


_TRAINING_FLAGS = (("data", "image_size"), ("data", "batch_size"), ("data", "augmentations"),
                   ("backbone", "fine_tune_depth"), ("head", "head_units"),
                   ("head", "dropout"), ("head", "l2"), ("head", "label_smoothing"),
                   ("train", "optimizer"), ("train", "learning_rate"),
                   ("train", "fine_tune_lr_factor"), ("train", "epochs"),
                   ("train", "head_epochs"), ("train", "class_weight"), ("train", "ema"),
                   ("train", "tta"), ("export", "export_tta"),
                   ("seed", None))


def _value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "(none)"
    return str(value)


def _training_blocks(config: Mapping, metrics: Mapping, search: Mapping | None) -> list:
    rows = []
    for section, name in _TRAINING_FLAGS:
        value = config.get(section) if name is None else config.get(section, {}).get(name)
        if value is not None:
            rows.append((f"--{name or section}", _value(value)))
    phases = metrics.get("training", {}).get("phases", [])
    blocks = [Heading("Training and hyperparameters"), Table(["flag", "value"], rows)]
    if phases:
        blocks.append(Paragraph("Phases: " + "; ".join(
            f"{p['name']} {p['epochs']} epoch(s)" for p in phases) + "."))
    chosen = config.get("chosen_hyperparameters")
    if chosen:
        blocks += [Paragraph("Chosen by the search:"),
                   Table(["hyperparameter", "value"],
                         sorted((k, _value(v)) for k, v in chosen.items()))]
    if search:
        trials = search.get("trials", [])
        completed = sum(t.get("status") == "COMPLETED" for t in trials)
        scores = [t["score"] for t in trials if t.get("score") is not None]
        best = f"; best {search.get('objective')} {max(scores):.4f}" if scores else ""
        blocks.append(Paragraph(f"Search: {search.get('tuner')}, {len(trials)} trials "
                                f"({completed} completed){best}."))
    else:
        blocks.append(Paragraph("No hyperparameter search ran: the values above are the "
                                "flags' own."))
    return blocks


def _limitations(config: Mapping, metrics: Mapping, search: Mapping | None) -> list[str]:
    notes = []
    names = metrics.get("class_names", [])
    train_counts = (metrics.get("data", {}).get("class_counts") or {}).get("train")
    if train_counts and min(train_counts) > 0:
        ratio = max(train_counts) / min(train_counts)
        if ratio >= IMBALANCE_RATIO:
            notes.append(f"The training classes are imbalanced ({ratio:.1f}:1 between the "
                         f"largest and the smallest); rarer classes are likely recognised less "
                         f"well than the accuracy suggests (see the per-class recall).")
    if train_counts and names:
        few = [names[k] for k, n in enumerate(train_counts) if n < FEW_EXAMPLES]
        if few:
            notes.append(f"Classes with fewer than {FEW_EXAMPLES} training images: "
                         f"{', '.join(few)}; their scores are uncertain.")
    split = _evaluated_split(metrics)
    if split == "validation":
        notes.append("There is no test split: the metrics come from the validation split, "
                     "which also chose the training's best epoch"
                     + (" and the search's best trial" if search else "")
                     + ", so they are optimistic.")
    if split and metrics[split]["num_examples"] < SMALL_EVALUATION:
        notes.append(f"The metrics rest on {metrics[split]['num_examples']} images; the 95 % "
                     f"intervals above show how far the true values may lie.")
    ece = metrics[split].get("expected_calibration_error") if split else None
    if ece is not None and ece > POOR_CALIBRATION:
        notes.append(f"The probabilities are not well calibrated (ECE {ece:.3f}); do not read "
                     f"them as the chance of being right without recalibrating.")
    r = metrics.get("robustness")
    if r and r["clean_accuracy"] - r["robust_accuracy"] > 0.1:
        notes.append("Small adversarial perturbations change many predictions (see "
                     "Robustness): do not use the model where inputs may be manipulated.")
    if not r:
        notes.append("Robustness to attacks and corruptions was not measured "
                     "(--robustness_eval).")
    notes.append(f"Every image is assigned one of the {len(names)} known classes, even an "
                 f"image of none of them; images unlike the training data (other cameras, "
                 f"lighting, subjects) may be classified confidently and wrongly.")
    return notes


def build(config: Mapping, metrics: Mapping, search: Mapping | None = None,
          backbone: Mapping | None = None, variant: str | None = None) -> str:
    """The card's Markdown. `config`: config.json's content; `metrics`: metrics.json's (for a
    variant, with the variant's block's scores in place of the top level's); `search`:
    search.json's; `backbone`: the backbone folder's provenance.json (name, source, licence);
    `variant`: "ensemble" or "adversarial" for a variant's card."""
    names = metrics.get("class_names", [])
    title = f"Model card: {config['data']['dataset']} classifier" + (
        f" ({variant})" if variant else "")
    blocks = [Heading(title, 1),
              Paragraph(f"An image classifier into {len(names)} "
                        + ("labels, any number per image " if "multi_label" in metrics
                           else "classes ")
                        + f"({', '.join(map(str, names))}), made by tftransfer: a head trained "
                        f"on a pretrained backbone's features.")]
    blocks += _model_blocks(config, metrics, backbone, variant)
    blocks += _data_blocks(config, metrics)
    blocks += _metric_blocks(metrics)
    blocks += _calibration_blocks(metrics)
    blocks += _robustness_blocks(metrics)
    blocks += _training_blocks(config, metrics, search)
    blocks += [Heading("Intended use"),
               Paragraph(f"Sorting images like those of `{config['data']['dataset']}` into "
                         f"its {len(names)} classes, where an occasional error is acceptable "
                         f"or a person checks the result. Not evaluated for decisions about "
                         f"people, safety-critical use, or data unlike the training set."),
               Heading("Limitations"),
               *map(Paragraph, (f"- {note}" for note in _limitations(config, metrics, search)))]
    return to_markdown(blocks)


def _variant_metrics(metrics: Mapping, variant: str) -> dict:
    """The metrics a variant's card reads: the run's data and classes, the variant's scores."""
    block = metrics[variant]
    shared = {k: metrics[k] for k in ("class_names", "data", "training") if k in metrics}
    scores = {k: block[k] for k in ("validation", "test", "robustness") if k in block}
    return {**shared, **scores, variant: block}


def read_backbone_provenance(hub_handle: str) -> dict | None:
    """A local backbone folder's provenance.json (tftransfer.assets writes one), else None."""
    if not os.path.isdir(hub_handle):
        return None
    return atomic.read_json(os.path.join(hub_handle, run_folder.BACKBONE_PROVENANCE))


def _copy_into_assets(card: str, export_dir: str | None) -> str | None:
    if not export_dir or not is_saved_model(export_dir):
        return None
    path = os.path.join(export_dir, "assets", run_folder.MODEL_CARD_MD)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic.write_text(path, card)
    return path


def write_model_cards(output_dir: str, export_dir: str | None) -> list[str]:
    """Writes `<output_dir>/model_card.md` from the run's files and copies it into
    `export_dir`'s assets/; each variant with an export gets its own card there. Returns the
    paths written."""
    config = atomic.read_json(os.path.join(output_dir, run_folder.CONFIG_JSON))
    metrics = atomic.read_json(os.path.join(output_dir, run_folder.METRICS_JSON))
    search = atomic.read_json(os.path.join(output_dir, run_folder.SEARCH_JSON))
    backbone = read_backbone_provenance(config["backbone"]["hub_handle"])
    card = build(config, metrics, search, backbone)
    path = os.path.join(output_dir, run_folder.MODEL_CARD_MD)
    atomic.write_text(path, card)
    written = [path, _copy_into_assets(card, export_dir)]
    for variant in VARIANTS:
        if variant in metrics:
            written.append(_copy_into_assets(
                build(config, _variant_metrics(metrics, variant), search, backbone, variant),
                metrics[variant].get("export_dir")))
    return [p for p in written if p]
