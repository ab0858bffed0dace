"""What a run shows on the console besides its log: Keras's progress bars when stdout is a
terminal, one line per epoch when it is not (a pipe, a log file, CI), and TensorFlow's C++
start-up lines hidden unless the user asks for them.

Library code logs; a progress bar is the one thing it writes to stdout, and only to a
terminal.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import MutableMapping

# TensorFlow's C++ logging threshold. 3 hides INFO, WARNING and ERROR lines: the ERRORs
# logged on a sound run ("failed call to cuInit" without a GPU, "oneDNN supports DT_INT32
# only on platforms with AVX-512") read as failures, and a real failure raises in Python.
TF_LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LOG_LEVEL = "3"


def is_terminal(stream=None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def fit_verbose(terminal: bool | None = None) -> int:
    """Keras fit's verbose: 1 (a progress bar with ETA inside each epoch) on a terminal,
    2 (one line per epoch) elsewhere."""
    return 1 if (is_terminal() if terminal is None else terminal) else 2


def progress_verbose(terminal: bool | None = None) -> int:
    """Keras predict's (and a Progbar's) verbose: a bar on a terminal, nothing elsewhere
    (the log says what is being computed)."""
    return 1 if (is_terminal() if terminal is None else terminal) else 0


def progress_bar(target: int | None, unit_name: str = "step"):
    """keras.utils.Progbar that draws only on a terminal."""
    import keras

    return keras.utils.Progbar(target, verbose=progress_verbose(), unit_name=unit_name)


def quiet_tensorflow_logs(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Hides TensorFlow's C++ log lines but FATAL ones, unless the user set their own level
    (theirs wins). Must run before TensorFlow is imported. Returns whether it set it."""
    if TF_LOG_LEVEL_VARIABLE in environ:
        return False
    environ[TF_LOG_LEVEL_VARIABLE] = QUIET_TF_LOG_LEVEL
    return True


@contextlib.contextmanager
def _stderr_captured():
    """Redirects file descriptor 2 (C++ writes bypass sys.stderr) into a temporary file;
    yields that file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def start_tensorflow(quiet: bool) -> None:
    """Imports TensorFlow and lists its devices; `quiet` (quiet_tensorflow_logs() set the
    level) hides the C++ lines they log: those written before TensorFlow reads its level
    (oneDNN, CUDA stubs, CPU features) and the ERROR a machine without a GPU logs when CUDA
    finds none. If the import fails, the hidden lines are written out after all."""
    if not quiet or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    error, lines = None, b""
    with _stderr_captured() as captured:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # finds the devices; the runtime waits
        except BaseException as e:  # shown with what TensorFlow logged before it
            error = e
            captured.seek(0)
            lines = captured.read()
    if error is not None:
        os.write(2, lines)
        raise error
