"""compression.json as a table for the report. No TensorFlow here, so the report can be
rebuilt from a finished run's files quickly."""
from __future__ import annotations

from typing import Mapping

from tftransfer.report.format import Paragraph, Table, to_markdown

HEADER = ["variant", "accuracy", "change", "macro-F1", "size", "gzip", "latency p50 (ms)",
          "throughput (img/s)", "flag"]


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.2f} MB" if num_bytes >= 2**20 else f"{num_bytes / 1024:.1f} KB"


def table(result: Mapping) -> tuple[list[str], list[list[str]]]:
    """(header, rows of formatted cells), one row per variant, the baseline first."""
    points = 100 * result["tolerance"]
    rows = [[v["variant"], f"{v['accuracy']:.2%}", f"{0.0 - 100 * v['accuracy_drop']:+.2f} pt",
             f"{v['macro_f1']:.4f}", _size(v["size_bytes"]), _size(v["gzip_size_bytes"]),
             f"{v['latency_p50_ms']:.2f}", f"{v['throughput_images_per_s']:.0f}",
             f"**flagged**: lost more than {points:g} pt" if v["flagged"] else ""]
            for v in result["variants"]]
    return HEADER, rows


def notes(result: Mapping) -> list[str]:
    """Sentences under the table: what was measured, skipped variants, the pruning."""
    lines = [f"{result['split'].capitalize()} split ({result['num_examples']} images); change "
             f"in accuracy from `{result['baseline']}`; latency at batch 1, throughput at "
             f"batch {result['serving_batch']}, on {result['device']}."]
    lines += [f"Skipped {s['variant']}: {s['reason']}" for s in result["skipped"]]
    p = result.get("pruning")
    if p:
        lines.append(f"Pruned {len(p['pruned_kernels'])} kernels ({p['pruned_weights']} "
                     f"weights) to {p['sparsity']:.1%} sparsity (target "
                     f"{p['target_sparsity']:.0%}); gzipped weights "
                     f"{_size(p['variables_gzip_bytes'])} against "
                     f"{_size(p['float_variables_gzip_bytes'])} unpruned.")
    return lines


def markdown_table(result: Mapping) -> str:
    return to_markdown([Table(*table(result)), *map(Paragraph, notes(result))])
