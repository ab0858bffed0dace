"""Writes that a killed process never leaves half done."""
from __future__ import annotations

import json
import os


def write_json(path: str, payload, **dump_options) -> None:
    """Writes `payload` as JSON beside `path`, then renames it into place."""
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as f:
        json.dump(payload, f, **dump_options)
    os.replace(staging, path)
