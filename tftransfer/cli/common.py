"""What every command shares: flag parsing with one-line errors, a UserError (or a write
the disk refused) turned into one line on stderr and exit status 2, and TensorFlow started
without its C++ start-up lines (outputs/console.py)."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags

from tftransfer.config.errors import UserError, as_storage_error
from tftransfer.outputs import console

_quiet_tensorflow = False  # whether start() set TensorFlow's C++ log level


def fail(problem) -> NoReturn:
    sys.stderr.write(f"error: {problem}\n")
    sys.exit(2)


def parse_argv(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl parsing with a one-line error and exit status 2 instead of a usage dump."""
    try:
        return flag_values(argv)
    except flags.Error as e:
        fail(str(e).removeprefix("ERROR:: "))  # absl's prefix for an unreadable flagfile


@contextlib.contextmanager
def user_errors():
    """A UserError, or a full disk or refused write (the user's to fix, not a bug), ends
    the command with one line and exit status 2; anything else is a bug and propagates."""
    try:
        yield
    except Exception as e:
        problem = e if isinstance(e, UserError) else as_storage_error(e)
        if problem is None:
            raise
        fail(problem)


def start_tensorflow() -> None:
    """Imports TensorFlow, hiding its C++ start-up lines unless the user set
    TF_CPP_MIN_LOG_LEVEL. A command calls it once its flags are checked."""
    console.start_tensorflow(_quiet_tensorflow)


def start(main: Callable[[list[str]], None], define_flags: Callable[[], None]) -> None:
    """Defines the command's flags, parses argv and runs `main` under absl. absl's --help
    prints the __main__ module's docstring: the command's usage."""
    global _quiet_tensorflow
    _quiet_tensorflow = console.quiet_tensorflow_logs()  # before TensorFlow is imported
    define_flags()
    app.run(main, flags_parser=parse_argv)
