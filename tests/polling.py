"""Waiting in tests without fixed sleeps: poll for the awaited state, fail with a message at a deadline.

A fixed `time.sleep(n)` is too short on a loaded machine (a flaky test) and too long on an idle one (a slow
suite); polling waits exactly as long as needed, up to a deadline that is only ever reached on a failure.
"""

from __future__ import annotations

import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def until(what: str, probe: Callable[[], T], timeout: float = 30.0, every: float = 0.05) -> T:
    """Gives probe()'s first truthy value, polling every `every` seconds; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def line_with(proc: subprocess.Popen[Any], text: str, timeout: float = 30.0) -> str:
    """Reads proc's stdout line by line until a line contains text; gives what was read (for later asserts).

    Fails when the process ends, or the deadline passes, first. The process must flush its lines (click.echo
    does); stdout must be a text pipe.
    """
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {text!r} on stdout; got {seen!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the process ended (exit {proc.wait()}) before printing {text!r}; got {seen!r}")
        seen += line
        if text in line:
            return seen


def asleep(pid: int) -> bool:
    """Tells whether process pid is blocked in a system call (state S in /proc; Linux). Where /proc cannot
    tell, says yes: the caller then proceeds as it would have without the check."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "S"
