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


def write_config(path: str, cfg, **extra) -> None:
    """A RunConfig as JSON, with `extra` top-level entries beside its sections."""
    write_json(path, {**cfg.to_dict(), **extra}, indent=2, sort_keys=True)
