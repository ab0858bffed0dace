"""Where an export lives on disk: TF Serving's `<base>/<version>/saved_model.pb` layout.

The model server loads every all-digit sub-folder of its base path as a version and serves
the highest; anything else (such as a hidden staging folder) is ignored. This module does
not import TensorFlow, so the CLIs can check a --model_dir before TensorFlow starts.
"""
from __future__ import annotations

import os

from tftransfer.config.errors import UserError
from tftransfer.outputs import run_folder

LABELS_FILE = "labels.txt"            # under assets/, one class name per line
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def is_saved_model(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f"saved_model.{ext}")) for ext in ("pb", "pbtxt"))


def versions(base_dir: str) -> list[int]:
    """The version numbers of base_dir's all-digit sub-folders, ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir)
                  if name.isascii() and name.isdigit()
                  and os.path.isdir(os.path.join(base_dir, name)))


def next_version(base_dir: str) -> int:
    """One above the highest version present; 1 in an empty or missing folder."""
    return max(versions(base_dir), default=0) + 1


def resolve_saved_model(path: str, flag: str = "") -> str:
    """A SavedModel folder as given, or the highest version under a base folder. Raises
    UserError, its message led by `flag` when given, if path holds neither."""
    if is_saved_model(path):
        return path
    complete = [v for v in versions(path) if is_saved_model(os.path.join(path, str(v)))]
    if complete:
        return os.path.join(path, str(complete[-1]))
    nested = os.path.join(path, run_folder.SAVED_MODEL)  # path may be a run's output_dir
    hint = f" (did you mean {nested}?)" if os.path.isdir(nested) else ""
    lead = f"{flag}: " if flag else ""
    raise UserError(f"{lead}{path} is not a SavedModel folder, nor a folder of numbered "
                    f"SavedModel versions{hint}")


def read_class_names(saved_model_dir: str) -> list[str] | None:
    """The class names in the export's assets/labels.txt; None if it has none."""
    try:
        with open(os.path.join(saved_model_dir, "assets", LABELS_FILE), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
