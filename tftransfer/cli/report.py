"""`python -m tftransfer.report --output_dir=DIR`: rebuilds report.md and report.html of a
finished run from its own files, and prints their paths."""
from __future__ import annotations

from absl import flags

from tftransfer.cli import common

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "A finished run's output folder.", required=True)


def main(argv) -> None:
    del argv
    from tftransfer.report import report

    with common.user_errors():
        for path in report.rebuild(FLAGS.output_dir):
            print(path)


def entry_point() -> None:
    common.start(main, define_flags)
