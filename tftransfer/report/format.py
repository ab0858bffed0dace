"""A report as a list of blocks, rendered to Markdown (PNG links) and to self-contained
HTML (the same PNGs embedded as data URIs)."""
from __future__ import annotations

import base64
import dataclasses
import html
import os
from typing import Sequence


@dataclasses.dataclass
class Heading:
    text: str
    level: int = 2


@dataclasses.dataclass
class Paragraph:
    text: str


@dataclasses.dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence]


@dataclasses.dataclass
class Figure:
    path: str       # relative to the report's folder
    caption: str


def cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(blocks) -> str:
    lines = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(cell(v).replace("|", "\\|") for v in row) + " |"
                      for row in block.rows]
            lines.append("")
        else:
            lines += [f"![{block.caption}]({block.path})", ""]
    return "\n".join(lines)


def to_html(blocks, folder: str, title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            header = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row)
                           + "</tr>" for row in block.rows)
            parts.append(f"<table><tr>{header}</tr>{rows}</table>")
        else:
            with open(os.path.join(folder, block.path), "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(block.caption)}' "
                         f"src='data:image/png;base64,{data}'><figcaption>"
                         f"{html.escape(block.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
