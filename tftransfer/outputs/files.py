"""Writes that a killed process never leaves half done: write beside, then rename."""
from __future__ import annotations

import json
import os


def write_text(path: str, text: str) -> None:
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(staging, path)


def write_json(path: str, payload, **dump_options) -> None:
    write_text(path, json.dumps(payload, **dump_options))
