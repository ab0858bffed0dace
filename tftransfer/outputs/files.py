"""Every output file is written and its JSON read here.

Writes go to `<path>.tmp` beside the file, then rename over it: a killed process leaves
either the old file or the new one, never half of one. A JSON read treats a file cut short
(Keras's own backup files are written in place, so a kill can truncate them) as absent.
"""
from __future__ import annotations

import contextlib
import json
import os


def write_bytes(path: str, content: bytes) -> None:
    staging = f"{path}.tmp"
    try:
        with open(staging, "wb") as f:
            f.write(content)
        os.replace(staging, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(staging)
        if isinstance(e, OSError) and e.filename == staging:
            e.filename = path  # a full disk's error line names the file the user knows
        raise


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, payload, **dump_options) -> None:
    """`dump_options` are json.dumps's (indent, sort_keys): each file keeps its own format."""
    write_text(path, json.dumps(payload, **dump_options))


def write_config(path: str, cfg, **extra) -> None:
    """A RunConfig as JSON, with `extra` top-level entries beside its sections."""
    write_json(path, {**cfg.to_dict(), **extra}, indent=2, sort_keys=True)


def read_json(path: str) -> dict | None:
    """The JSON in `path`, or None when it is absent, unreadable or cut short."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):  # ValueError: invalid JSON or UTF-8
        return None
