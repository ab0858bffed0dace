"""Classifies image files and folders with an exported model (its bytes signature, as TF
Serving runs it) and prints the top classes of each.

Usage: python -m tftransfer.predict --model_dir=DIR [--top_k=5] [--format=table|json]
           [--batch_size=32] PATH...

  --model_dir   a run's saved_model/ folder (its highest version) or a version folder
  PATH          image files, or folders searched recursively

Examples:
  python -m tftransfer.predict --model_dir=runs/quickstart/saved_model photo.jpg
  python -m tftransfer.predict --model_dir=runs/flowers/saved_model/1 --format=json photos/

Undecodable files are reported as skipped. On a terminal, a progress bar counts the files.
--helpfull lists every flag.
"""
# The entry point of `python -m tftransfer.predict`; absl prints the docstring above for
# --help. The command is tftransfer/cli/predict.py.
from tftransfer.cli.predict import entry_point

if __name__ == "__main__":
    entry_point()
