"""The command line: parses arguments, calls one plain function, renders its value, maps to an exit code.

This module is the console script's entry and stays light: a Ctrl-C while the command modules load
(about a second) must give one line and exit 130, not a traceback from deep inside an import. The
commands and the error mapping live in `root`; `cli` (the click group) is loaded on first use.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

EXIT_INTERRUPTED = 130


def _interrupted_while_loading(signum: int, frame: FrameType | None) -> None:
    # Nothing has started yet, so there is nothing to roll back: say so and leave at once.
    os.write(2, b"error: interrupted while starting; nothing was changed\n")
    os._exit(EXIT_INTERRUPTED)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; gives (and, for the console script, exits with) the exit code."""
    # Only where Ctrl-C would raise KeyboardInterrupt: not in a thread, not where SIGINT is ignored (nohup, &).
    guarded = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if guarded:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        from .root import run
    finally:
        if guarded:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return run(argv)


def __getattr__(name: str) -> Any:
    if name == "cli":  # the click group, for click's test runner and the docs
        from .root import cli

        return cli
    raise AttributeError(name)
