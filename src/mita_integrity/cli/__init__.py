"""The command line: parses arguments, calls one plain function, renders its value, maps to an exit code.

This module is the console script's entry and stays light: a Ctrl-C while the command modules load
(about a second, more on a busy machine) must give one line and exit 130, not a traceback from deep
inside an import. So the first thing the console script runs, before any other import, is the guard
below; the commands and the error mapping live in `root`, and `cli` (the click group) loads on first use.

May import: every package (the CLI is the top: nothing imports it).
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130


def _interrupted_while_loading(signum: int, frame: object) -> None:
    # Nothing has started yet, so there is nothing to roll back: say so and leave at once.
    os.write(2, b"error: interrupted while starting; nothing was changed\n")
    os._exit(EXIT_INTERRUPTED)


def _guard() -> bool:
    """Makes Ctrl-C end the loading in one line; gives whether it did (only where Ctrl-C would raise
    KeyboardInterrupt: not where SIGINT is ignored, as under nohup or `&`)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False
    try:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
    except ValueError:  # not the main thread: its loading cannot be interrupted by a signal anyway
        return False
    return True


# At import for the console script only: importing the package in a program of one's own changes nothing.
_GUARDED = os.path.basename(sys.argv[0] if sys.argv else "").startswith("mita-integrity") and _guard()


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; gives (and, for the console script, exits with) the exit code."""
    guarded = _GUARDED or _guard()
    try:
        from .root import run
    finally:
        if guarded:  # from here on Ctrl-C raises KeyboardInterrupt: the commands roll back and say one line
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return run(argv)


def __getattr__(name: str) -> object:
    if name == "cli":  # the click group, for click's test runner and the docs
        from .root import cli

        return cli
    raise AttributeError(name)
