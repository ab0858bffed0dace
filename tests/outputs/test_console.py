"""The console's choices (pure: no TensorFlow)."""
from __future__ import annotations

import io

from tftransfer.outputs import console


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_progress_bars_and_a_pipe_one_line_per_epoch():
    assert console.fit_verbose(terminal=True) == 1
    assert console.fit_verbose(terminal=False) == 2
    assert console.progress_verbose(terminal=True) == 1
    assert console.progress_verbose(terminal=False) == 0


def test_is_terminal_asks_the_stream():
    assert console.is_terminal(_Terminal())
    assert not console.is_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not console.is_terminal(closed)
    assert not console.is_terminal(object())


def test_tensorflow_logs_are_quiet_unless_the_user_chose_a_level():
    environ = {}
    assert console.quiet_tensorflow_logs(environ)
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    own = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert not console.quiet_tensorflow_logs(own)
    assert own == {"TF_CPP_MIN_LOG_LEVEL": "0"}
