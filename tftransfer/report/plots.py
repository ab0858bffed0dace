"""Figures of a run as PNG bytes, shared by the report and TensorBoard's images plugin."""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def learning_curves(phases: Sequence[dict]) -> bytes:
    """Loss and accuracy (a multi-label run's: AUC) per epoch over all training phases, a
    line between phases."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 3.6))
    histories = [p["history"] for p in phases]
    score = "auc" if any("auc" in h for h in histories) else "accuracy"
    for key, axes in (("loss", loss_axes), (score, accuracy_axes)):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [v for h in histories for v in h.get(prefix + key, [])]
            if values:
                axes.plot(range(1, len(values) + 1), values, style, markersize=3,
                          label="validation" if prefix else "training")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes.set_title(key)
        axes.grid(alpha=0.3)
        axes.legend()
    boundary = 0
    for phase in phases[:-1]:
        boundary += phase["epochs"]
        for axes in (loss_axes, accuracy_axes):
            axes.axvline(boundary + 0.5, color="grey", linestyle=":")
    return _png(figure)


def learning_rate_range(rates: Sequence[float], losses: Sequence[float],
                        suggestion: float) -> bytes:
    """The range test's smoothed loss against the learning rate, its suggestion marked."""
    figure, axes = plt.subplots(figsize=(6, 3.6))
    axes.plot(rates, losses, "-")
    axes.axvline(suggestion, color="tab:red", linestyle="--",
                 label=f"suggested {suggestion:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss (smoothed)")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def accuracy_over_time(curves: dict[str, tuple[Sequence[float], Sequence[float]]]) -> bytes:
    """Validation accuracy against training wall time, a line per model:
    {label: (seconds, accuracy)}."""
    figure, axes = plt.subplots(figsize=(6, 3.6))
    for label, (seconds, accuracy) in curves.items():
        axes.plot(seconds, accuracy, "-o", markersize=3, label=label)
    axes.set_xlabel("training time (s)")
    axes.set_ylabel("validation accuracy")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def confusion_matrix(confusion, class_names: Sequence[str]) -> bytes:
    """Row-normalised confusion matrix (rows: true class) with the counts written in."""
    counts = np.asarray(confusion)
    totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(counts / totals, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(ticks, class_names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 25:
        for (row, column), count in np.ndenumerate(counts):
            dark = count / totals[row, 0] > 0.6
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if dark else "black")
    return _png(figure)


def image_grid(images, titles: Sequence[str], columns: int = 8) -> bytes:
    """float images in [0, 1] (or uint8) [N, H, W, 3] as a titled grid."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = (np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    rows = int(np.ceil(len(images) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.7 * rows),
                                squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.axis("off")
        if index < len(images):
            axes.imshow(images[index])
            axes.set_title(titles[index][:14], fontsize=7)
    return _png(figure)


def robustness_curves(models: dict) -> bytes:
    """Accuracy against ε (FGSM dashed, PGD solid) and against corruption severity (mean
    over the corruptions), one colour per model; ε 0 and severity 0 are the clean images.
    `models`: {label: the `robustness` block of metrics.json}."""
    figure, (attack_axes, corruption_axes) = plt.subplots(1, 2, figsize=(10, 3.6))
    for index, (label, result) in enumerate(models.items()):
        color = f"C{index}"
        for attack, style in (("fgsm", "--o"), ("pgd", "-s")):
            points = sorted({(0.0, result["clean_accuracy"])} | {
                (a["epsilon"], a["accuracy"]) for a in result["attacks"]
                if a["attack"] == attack and a["epsilon"] > 0})
            attack_axes.plot(*zip(*points), style, color=color, markersize=3,
                             label=f"{label}, {attack.upper()}")
        severities = sorted({c["severity"] for c in result["corruptions"]})
        means = [np.mean([c["accuracy"] for c in result["corruptions"] if c["severity"] == s])
                 for s in severities]
        corruption_axes.plot([0, *severities], [result["clean_accuracy"], *means], "-o",
                             color=color, markersize=3, label=label)
    attack_axes.set_xlabel("ε (pixel units in [0, 1])")
    attack_axes.set_title("adversarial attacks")
    corruption_axes.set_xlabel("severity")
    corruption_axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    corruption_axes.set_title("common corruptions (mean)")
    for axes in (attack_axes, corruption_axes):
        axes.set_ylabel("accuracy")
        axes.set_ylim(-0.02, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return _png(figure)


def reliability_diagram(before: dict, after: dict) -> bytes:
    """Accuracy against confidence per bin, before and after temperature scaling, beside
    the share of examples in each bin. `before`/`after`: evaluate.metrics.reliability_bins
    results with the same number of bins."""
    figure, (diagram_axes, count_axes) = plt.subplots(
        2, 1, figsize=(5.2, 5.6), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    width = 1.0 / before["num_bins"]
    centres = (np.arange(before["num_bins"]) + 0.5) * width
    diagram_axes.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for offset, (label, bins, color) in enumerate((("before", before, "C3"),
                                                   ("after", after, "C0"))):
        shown = [i for i, a in enumerate(bins["accuracy"]) if a is not None]
        diagram_axes.bar(centres[shown] + (offset - 0.5) * width / 2,
                         [bins["accuracy"][i] for i in shown], width=width / 2, color=color,
                         alpha=0.75,
                         label=f"{label} (ECE {bins['expected_calibration_error']:.3f})")
        total = max(sum(bins["count"]), 1)
        count_axes.bar(centres + (offset - 0.5) * width / 2,
                       np.asarray(bins["count"]) / total, width=width / 2, color=color,
                       alpha=0.75)
    diagram_axes.set_ylabel("accuracy")
    diagram_axes.set_xlim(0, 1)
    diagram_axes.set_ylim(0, 1.02)
    diagram_axes.grid(alpha=0.3)
    diagram_axes.legend(fontsize=8, loc="upper left")
    count_axes.set_xlabel("confidence (max probability)")
    count_axes.set_ylabel("share")
    count_axes.grid(alpha=0.3)
    return _png(figure)


def roc_curves(curves: dict) -> bytes:
    """One-vs-rest ROC curves: the macro average (thick) and each kept class, AUC in the
    legend. `curves`: evaluate.metrics.roc_curves's result."""
    figure, axes = plt.subplots(figsize=(5.6, 5.0))
    axes.plot([0, 1], [0, 1], ":", color="grey")
    fpr = curves["fpr"]
    for index, curve in enumerate(curves["classes"]):
        axes.plot(fpr, curve["tpr"], color=f"C{index % 10}", linewidth=1,
                  label=f"{curve['class'][:20]} ({curve['auc']:.3f})")
    if curves["macro"]:
        axes.plot(fpr, curves["macro"]["tpr"], color="black", linewidth=2.2,
                  label=f"macro average ({curves['macro']['auc']:.3f})")
    total = len(curves.get("auc_per_class", {}))
    if total > len(curves["classes"]):
        axes.set_title(f"the {len(curves['classes'])} lowest-AUC of {total} classes",
                       fontsize=9)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    return _png(figure)
