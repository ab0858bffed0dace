"""`python -m tftransfer.predict --model_dir=DIR [--top_k=5] [--format=table|json] PATH...`

Classifies image files and folders (recursively) through the SavedModel's own
bytes signature (export/signatures.py), so the CLI and TF Serving agree. Undecodable files are
reported as skipped; no paths, no images or no SavedModel: `error: ...`, exit status 2.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from absl import flags

from tftransfer.cli import common
from tftransfer.config.errors import UserError
from tftransfer.config.run_config import IMAGE_EXTENSIONS
from tftransfer.export.layout import resolve_saved_model
from tftransfer.outputs import console

FLAGS = flags.FLAGS


def find_images(paths: Sequence[str]) -> list[str]:
    """Files as given, plus the image files under folders (recursive, sorted, no dot-files)."""
    if not paths:
        raise UserError("no image files or folders given")
    found = []
    for path in paths:
        if os.path.isdir(path):
            inside = []
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                inside += [os.path.join(root, n) for n in names
                           if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
            found += sorted(inside)
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise UserError(f"no such file or folder: {path}")
    if not found:
        raise UserError(f"no images ({' '.join(IMAGE_EXTENSIONS)}) found in {' '.join(paths)}")
    return list(dict.fromkeys(found))


def check_model_dir(model_dir: str | None) -> str:
    """The SavedModel folder model_dir names: itself, or its highest numbered version.
    Raises UserError if there is none (checked without TensorFlow)."""
    if not model_dir:
        raise UserError("--model_dir is required (an exported <output_dir>/saved_model)")
    return resolve_saved_model(model_dir, flag="--model_dir")


def predict_files(model_dir: str, files: Sequence[str], top_k: int = 5,
                  batch_size: int = 32) -> list[dict]:
    """Per file, in order: {"path", "predictions": [{"class", "probability"}, ...]} with the
    top min(top_k, C) classes, most probable first (from a multi-label export, also
    "labels": those at or above their thresholds), or {"path", "error"} if it was skipped."""
    if top_k < 1 or batch_size < 1:
        raise UserError(f"top_k and batch_size must be >= 1, got {top_k} and {batch_size}")
    import tensorflow as tf

    from tftransfer.export import client as client_lib, signatures

    client = client_lib.ServingClient(check_model_dir(model_dir))
    client.function(signatures.BYTES)  # fails early, in one line, if it is not there
    names, results = client.class_names, {}
    one_line = client_lib.one_line

    def classify(batch: list[tuple[str, bytes]]) -> None:
        try:
            outputs = client.call(signatures.BYTES, tf.constant([b for _, b in batch]))
        except tf.errors.InvalidArgumentError as e:
            if len(batch) == 1:
                results[batch[0][0]] = {"path": batch[0][0],
                                        "error": f"the model rejected it: {one_line(e)}"}
            else:  # one file the graph rejects must not cost the others their results
                for item in batch:
                    classify([item])
            return
        probs = outputs[signatures.PROBABILITIES].numpy()
        labels = names or [str(i) for i in range(probs.shape[-1])]
        above = outputs.get(signatures.LABELS)
        for row, ((path, _), p) in enumerate(zip(batch, probs.tolist())):
            order = sorted(range(len(p)), key=lambda i: -p[i])[:top_k]
            results[path] = {"path": path, "predictions": [
                {"class": labels[i], "probability": p[i]} for i in order]}
            if above is not None:
                results[path]["labels"] = [n.decode() for n in above[row].numpy() if n]

    # Many files: a bar on a terminal (it goes to stdout before the results do).
    progress = console.progress_bar(len(files), "file") if len(files) > batch_size else None
    pending = []
    for number, path in enumerate(files, 1):  # decoded here first, so one bad file is skipped, not the batch
        try:
            with open(path, "rb") as f:
                encoded = f.read()
            tf.io.decode_image(encoded, channels=3, expand_animations=False)
        except OSError as e:
            results[path] = {"path": path, "error": f"cannot read it: {e.strerror or e}"}
        except tf.errors.OpError as e:
            results[path] = {"path": path, "error": f"cannot decode image: {one_line(e)}"}
        else:
            pending.append((path, encoded))
        if len(pending) == batch_size or number == len(files):
            if pending:
                classify(pending)
            pending = []
            if progress is not None:
                progress.update(number)
    return [results[path] for path in files]


def format_table(results: Sequence[dict]) -> str:
    """A block per file: its path, then `  class  probability` lines; a line if skipped."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['path']}: skipped ({r['error']})")
            continue
        width = max(len(p["class"]) for p in r["predictions"])
        lines += [r["path"]] + [f"  {p['class']:<{width}}  {p['probability']:.4f}"
                                for p in r["predictions"]]
        if "labels" in r:
            lines.append(f"  labels above threshold: {' '.join(r['labels']) or '(none)'}")
    return "".join(f"{line}\n" for line in lines)


def define_flags() -> None:
    flags.DEFINE_string("model_dir", None, "Exported SavedModel: <output_dir>/saved_model "
                                           "(its highest version) or a version folder.")
    flags.DEFINE_integer("top_k", 5, "Classes shown per image.", lower_bound=1)
    flags.DEFINE_enum("format", "table", ["table", "json"], "Output format.")
    flags.DEFINE_integer("batch_size", 32, "Images per call to the model.", lower_bound=1)


def main(argv) -> None:
    with common.user_errors():
        check_model_dir(FLAGS.model_dir)  # before TensorFlow starts, so stderr stays one line
        common.start_tensorflow()
        results = predict_files(FLAGS.model_dir, find_images(argv[1:]), FLAGS.top_k,
                                FLAGS.batch_size)
    sys.stdout.write(json.dumps(results, indent=2) + "\n" if FLAGS.format == "json"
                     else format_table(results))


def entry_point() -> None:
    common.start(main, define_flags)


if __name__ == "__main__":
    entry_point()
