"""Rebuilds report.md and report.html of a finished run from its own files and prints
their paths.

Usage: python -m tftransfer.report --output_dir=DIR

Example:
  python -m tftransfer.report --output_dir=runs/quickstart
"""
# The entry point of `python -m tftransfer.report`: tftransfer/cli/report.py.
from tftransfer.cli.report import entry_point

entry_point()
