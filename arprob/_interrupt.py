"""Ctrl-C while ``arprob`` (and JAX) is still importing, on the command line: one line.

The console script runs ``from arprob.cli import main`` before ``main`` can catch anything,
and importing JAX takes seconds; an interrupt there would print a 40-line traceback (or an
``ImportError`` when it lands in an extension's initialisation). When the process is the
``arprob`` command (its script, or ``python -m arprob``/``arprob.cli``), ``install()`` sets
a SIGINT handler that prints ``arprob: interrupted`` and exits 130 at once; ``main``
calls ``restore()`` first thing, after which Ctrl-C is a ``KeyboardInterrupt`` again (one
line and 130 from ``main``; ``fit`` stops after its current update). Library users are
untouched.
"""

from __future__ import annotations

import os
import signal
import sys


def is_command_line() -> bool:
    """Whether this process is the ``arprob`` command."""
    if sys.argv and os.path.basename(sys.argv[0]) == "arprob":
        return True
    orig = list(getattr(sys, "orig_argv", []))
    if "-m" in orig[:-1]:
        return orig[orig.index("-m") + 1] in ("arprob", "arprob.cli")
    return False


def _exit_at_once(signum, frame) -> None:
    # During imports nothing has been written and nothing needs cleaning up; a
    # KeyboardInterrupt raised inside an extension module's initialisation would surface as
    # an ImportError traceback, or be "ignored" inside a gc callback: leave at once instead.
    os.write(2, b"arprob: interrupted\n")
    os._exit(130)


def install() -> None:
    """Until ``restore()``: Ctrl-C prints one line and exits 130 at once (imports are under way)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when the shell ignores it
        signal.signal(signal.SIGINT, _exit_at_once)


def restore() -> None:
    """Back to Python's ``KeyboardInterrupt`` (``arprob.cli.main`` turns it into one line, 130)."""
    if signal.getsignal(signal.SIGINT) is _exit_at_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)
