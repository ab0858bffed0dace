"""`python -m tftransfer.predict --model_dir=DIR [--top_k=5] [--format=table|json] PATH...`

Classifies image files and folders (recursively) through the SavedModel's own
`serving_default` bytes signature, so the CLI and TF Serving agree. Undecodable files are
reported as skipped; no paths, no images or no SavedModel: `error: ...`, exit status 2.
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Sequence

from absl import app, flags

from tftransfer.config import IMAGE_EXTENSIONS
from tftransfer.errors import UserError
from tftransfer.export_layout import read_class_names, resolve_saved_model

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


def _one_line(error: Exception) -> str:
    """A TensorFlow error's message without graph context (node names, traces, op names)."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    kept = [line for line in text.splitlines() if line.strip() and not line[0].isspace()
            and not line.startswith(("Graph execution error", "Detected at node", "<stack"))]
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", " ".join(kept) or text)
    return " ".join(text.split())


def _load(model_dir: str):
    """(serving_default signature, class names or None) of the SavedModel in model_dir."""
    import tensorflow as tf
    model_dir = check_model_dir(model_dir)
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as e:  # a corrupt or incompatible SavedModel is the user's input
        raise UserError(f"cannot load the SavedModel in {model_dir}: {_one_line(e)}") from None
    serve = loaded.signatures.get("serving_default")
    if serve is None or "images" not in serve.structured_input_signature[1]:
        raise UserError(f"the SavedModel in {model_dir} has no serving_default(images) signature")
    return serve, read_class_names(model_dir)


def predict_files(model_dir: str, files: Sequence[str], top_k: int = 5,
                  batch_size: int = 32) -> list[dict]:
    """Per file, in order: {"path", "predictions": [{"class", "probability"}, ...]} with the
    top min(top_k, C) classes, most probable first, or {"path", "error"} if it was skipped."""
    if top_k < 1 or batch_size < 1:
        raise UserError(f"top_k and batch_size must be >= 1, got {top_k} and {batch_size}")
    import tensorflow as tf
    serve, names = _load(model_dir)
    results = {}

    def classify(batch: list[tuple[str, bytes]]) -> None:
        try:
            probs = serve(images=tf.constant([b for _, b in batch]))["probabilities"].numpy()
        except tf.errors.InvalidArgumentError as e:
            if len(batch) == 1:
                results[batch[0][0]] = {"path": batch[0][0],
                                        "error": f"the model rejected it: {_one_line(e)}"}
            else:  # one file the graph rejects must not cost the others their results
                for item in batch:
                    classify([item])
            return
        labels = names or [str(i) for i in range(probs.shape[-1])]
        for (path, _), p in zip(batch, probs.tolist()):
            order = sorted(range(len(p)), key=lambda i: -p[i])[:top_k]
            results[path] = {"path": path, "predictions": [
                {"class": labels[i], "probability": p[i]} for i in order]}

    pending = []
    for path in files:  # decoded here first, so one bad file is skipped, not the batch
        try:
            with open(path, "rb") as f:
                encoded = f.read()
            tf.io.decode_image(encoded, channels=3, expand_animations=False)
        except OSError as e:
            results[path] = {"path": path, "error": f"cannot read it: {e.strerror or e}"}
        except tf.errors.OpError as e:
            results[path] = {"path": path, "error": f"cannot decode image: {_one_line(e)}"}
        else:
            pending.append((path, encoded))
            if len(pending) == batch_size:
                classify(pending)
                pending = []
    if pending:
        classify(pending)
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
    return "".join(f"{line}\n" for line in lines)


def define_flags() -> None:
    flags.DEFINE_string("model_dir", None, "Exported SavedModel: <output_dir>/saved_model "
                                           "(its highest version) or a version folder.")
    flags.DEFINE_integer("top_k", 5, "Classes shown per image.", lower_bound=1)
    flags.DEFINE_enum("format", "table", ["table", "json"], "Output format.")
    flags.DEFINE_integer("batch_size", 32, "Images per call to the model.", lower_bound=1)


def main(argv) -> None:
    try:
        check_model_dir(FLAGS.model_dir)  # before TensorFlow starts, so stderr stays one line
        results = predict_files(FLAGS.model_dir, find_images(argv[1:]), FLAGS.top_k,
                                FLAGS.batch_size)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    sys.stdout.write(json.dumps(results, indent=2) + "\n" if FLAGS.format == "json"
                     else format_table(results))


def entry_point() -> None:
    from tftransfer import flags as flags_lib  # parse_argv: one-line flag errors, exit 2
    define_flags()  # not at import: tftransfer.run defines its own --batch_size on FLAGS
    app.run(main, flags_parser=flags_lib.parse_argv)


if __name__ == "__main__":
    entry_point()
