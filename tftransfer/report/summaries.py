"""TensorBoard summaries of a finished run, beside the Keras callback's scalars.

Written to `<output_dir>/tensorboard/evaluation`: the final metrics as scalars (with
--calibrate, also the temperature and each split's ECE before and after), the confusion
matrix, ROC curves, reliability diagram and a grid of augmented training samples (images
plugin), one-vs-rest PR curves per class, the metrics as text, and the run's
hyperparameters with its final metrics (HParams plugin), so runs in sibling output folders
can be compared.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.pr_curve import summary as pr_curve_summary

from tftransfer.evaluate.multi_label import SCALAR_KEYS as MULTI_LABEL_SCALAR_KEYS

SCALAR_KEYS = ("accuracy", "top5_accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
               "auc_roc_macro_ovr", "expected_calibration_error", "loss")
# The summary writes its figures as TensorBoard images; these are their tags.
FIGURE_TAGS = {"confusion_matrix": "evaluation/confusion_matrix",
               "augmented_samples": "data/augmented_training_samples",
               "learning_curves": "training/learning_curves",
               "robustness_curves": "evaluation/robustness_curves",
               "transfer_gain": "evaluation/accuracy_over_training_time",
               "learning_rate_range": "training/learning_rate_range",
               "roc_curves": "evaluation/roc_curves",
               "reliability_diagram": "evaluation/reliability_diagram"}


def _hparam_value(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _metrics_markdown(split_metrics: Mapping[str, dict]) -> str:
    lines = ["| split | " + " | ".join(SCALAR_KEYS) + " |",
             "|---" * (len(SCALAR_KEYS) + 1) + "|"]
    for split, values in split_metrics.items():
        cells = [f"{values[k]:.4f}" if isinstance(values.get(k), float) else "–"
                 for k in SCALAR_KEYS]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _per_class_markdown(per_class: Sequence[dict]) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {c['class']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} "
              f"| {c['support']} |" for c in per_class]
    return "\n".join(lines)


def _write_pr_curves(labels: np.ndarray, probabilities: np.ndarray,
                     class_names: Sequence[str], step: int) -> None:
    for k, name in enumerate(class_names):
        curve = pr_curve_summary.pb(f"class_{k:03d}", labels == k,
                                    probabilities[:, k].astype(np.float32),
                                    num_thresholds=101, display_name=str(name))
        tf.summary.experimental.write_raw_pb(curve.SerializeToString(), step=step)


def _write_calibration(calibration: Mapping, step: int) -> None:
    tf.summary.scalar("calibration/temperature", calibration["temperature"], step=step)
    for split in ("validation", "test"):
        for when in ("before", "after"):
            if split in calibration:
                tf.summary.scalar(f"calibration/{split}/ece_{when}",
                                  calibration[split][f"ece_{when}"], step=step)


def _write_hparams(flat_config: Mapping, logdir: str) -> None:
    hparams_api.hparams({k: _hparam_value(v) for k, v in flat_config.items()},
                        trial_id=os.path.basename(os.path.dirname(os.path.abspath(logdir))))


def _write_multi_label(block: Mapping, step: int) -> None:
    """A multi-label run's scores (metrics.json's `multi_label`): each split's scalars, also
    as hparams/ metrics, and the per-label table of the test split (else validation)."""
    for split in ("validation", "test"):
        for key in MULTI_LABEL_SCALAR_KEYS:
            if isinstance(block.get(split, {}).get(key), float):
                tf.summary.scalar(f"{split}/{key}", block[split][key], step=step)
                if split == "test" or "test" not in block:
                    tf.summary.scalar(f"hparams/{key}", block[split][key], step=step)
    shown = "test" if "test" in block else "validation" if "validation" in block else None
    if shown:
        lines = ["| label | threshold | AP | AUC | F1 | support |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['label']} | {r['threshold']:.3f} | {r['average_precision']} | "
                  f"{r['auc_roc']} | {r['f1']:.3f} | {r['support']} |"
                  for r in block[shown]["per_label"]]
        tf.summary.text("metrics/per_label", "\n".join(lines), step=step)


def write_run_summaries(logdir: str, flat_config: Mapping, split_metrics: Mapping[str, dict],
                        predictions: Mapping, class_names: Sequence[str],
                        figures: Mapping[str, bytes], step: int,
                        calibration: Mapping | None = None,
                        multi_label: Mapping | None = None) -> str:
    """Writes the run's final summaries at `step` (the last epoch); returns their folder.

    `predictions` maps a split to (labels, probabilities); PR curves use the test split
    (or validation without one). `figures` maps FIGURE_TAGS keys to PNG bytes.
    `calibration`: metrics.json's block of --calibrate, written as the temperature and
    each split's ECE before and after. `multi_label`: metrics.json's block of a
    --labels_csv run, whose scores are written instead of `split_metrics`'."""
    folder = os.path.join(logdir, "evaluation")
    writer = tf.summary.create_file_writer(folder)
    with writer.as_default():
        for split, values in split_metrics.items():
            for key in SCALAR_KEYS:
                if isinstance(values.get(key), float):
                    tf.summary.scalar(f"{split}/{key}", values[key], step=step)
        for name, png in figures.items():
            image = tf.expand_dims(tf.io.decode_png(png, channels=3), 0)
            tf.summary.image(FIGURE_TAGS[name], image, step=step)
        tf.summary.text("metrics/summary", _metrics_markdown(split_metrics), step=step)
        if calibration:
            _write_calibration(calibration, step)
        if multi_label:
            _write_hparams(flat_config, logdir)
            _write_multi_label(multi_label, step)
        split = "test" if "test" in predictions else next(iter(predictions), None)
        if split is not None:
            labels, probabilities = predictions[split]
            _write_pr_curves(np.asarray(labels), np.asarray(probabilities), class_names, step)
            tf.summary.text("metrics/per_class", _per_class_markdown(
                split_metrics[split]["per_class"]), step=step)
            _write_hparams(flat_config, logdir)
            for key in SCALAR_KEYS:
                if isinstance(split_metrics[split].get(key), float):
                    tf.summary.scalar(f"hparams/{key}", split_metrics[split][key], step=step)
    writer.close()
    return folder
