"""Helpers for tests against a hot standby and around server faults: WAL flushes, replay, waiting, the CLI."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mita_integrity.database.connection import Database

SCRIPT = Path(sys.executable).with_name("mita-integrity")


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 30.0,
               explain: Callable[[], str] | None = None) -> Any:
    """Gives probe()'s first truthy value, polling; fails the test after timeout seconds (saying explain())."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f": {explain()}" if explain else ""))
        time.sleep(0.05)


def one(db: Database, query: str, *params: Any) -> Any:
    """Gives the first column of the first row of query (autocommit).

    On a standby, replay may end a session while it is still starting (FATAL: canceling statement due to
    conflict with recovery, with no SQLSTATE: libpq has none before the session exists); the helper tries
    again, as a person would, rather than fail the test that only wanted to read a value."""
    for attempt in range(20):
        try:
            with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
                row = conn.execute(query.encode() if not params else query, params or None).fetchone()
            return row[0] if row else None
        except psycopg.OperationalError as exc:
            if "conflict with recovery" not in str(exc) or attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def flush_wal(primary: Database) -> str:
    """Flushes the primary's WAL so far (a synchronous commit) and gives its position: what a standby must replay.

    The test servers run with synchronous_commit = off, and WAL of an open transaction (a LOCK) may sit
    in memory: a standby only receives what is flushed.
    """
    with psycopg.connect(autocommit=True, **primary.connect_kwargs()) as conn:
        conn.execute("SET synchronous_commit = on")
        conn.execute("SELECT txid_current()")
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wait_replayed(primary: Database, standby: Database, timeout: float = 60.0) -> None:
    """Waits until standby has replayed everything the primary wrote so far."""
    lsn = flush_wal(primary)

    def replayed() -> bool:
        try:
            return bool(one(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", lsn))
        except psycopg.OperationalError:  # the database itself is not replayed yet
            return False

    wait_until(f"the standby to replay up to {lsn}", replayed, timeout)


def lock(db: Database, table: str) -> psycopg.Connection:
    """Gives an open transaction holding ACCESS EXCLUSIVE on table; close it (a restart may have ended it)."""
    conn = psycopg.connect(**db.connect_kwargs())
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE".encode())
    return conn


def activity(db: Database) -> str:
    """Gives what every other session of db is doing (for a test's failure message)."""
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        rows = conn.execute("SELECT pid, application_name, state, wait_event_type, wait_event, left(query, 80) "
                            "FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()").fetchall()
    return "; ".join(" | ".join(str(v) for v in row) for row in rows) or "no other session"


def waiting_on_lock(db: Database) -> bool:
    """Tells whether a session of db waits for a lock (the command under test, stalled where we want it)."""
    return bool(one(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"))


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts the console script (a process of its own, as in production) with stdout and stderr captured."""
    import os

    return subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str, str]:
    """Waits for the process; gives (exit code, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the command did not finish in {timeout:.0f} s: {err[-2000:]}") from None
    return proc.returncode, out, err


def assert_one_line_error(code: int, out: str, err: str, *expected: str) -> None:
    """Exit 3, exactly one line on stderr starting with 'error: ' and containing every expected text."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, (code, out[-2000:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out, err
    for text in expected:
        assert text in lines[0], lines[0]


# What replay does to a standby's session, as the client sees it: a statement cancelled (SQLSTATE 40001), a session
# ended while the client was not reading (the socket closed before the FATAL was read: no SQLSTATE at all).
CANCELLED = psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")
ENDED_UNHEARD = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")


def replay_cancels(monkeypatch: pytest.MonkeyPatch, db: Database, error: psycopg.Error, times: int | None,
                    marker: str | None = None) -> list[str]:
    """Makes statements to db's server fail with `error`, `times` times (None: always): the first ones after the
    session's own settings, or only those containing `marker`. Gives the statements that failed."""
    real = psycopg.Cursor.execute
    port = int(db.parsed.params["port"])
    fired: list[str] = []

    def execute(cur: psycopg.Cursor[Any], *a: Any, **k: Any) -> Any:
        query = a[0] if a else k.get("query", "")
        statement = query.decode() if isinstance(query, bytes) else str(query)  # the session pin is sent as bytes
        hit = marker in statement if marker else not statement.lstrip().upper().startswith("SET")
        if hit and cur.connection.info.port == port and (times is None or len(fired) < times):
            fired.append(statement)
            raise type(error)(*error.args)  # a new one each time: connect() may mark what it lets through
        return real(cur, *a, **k)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return fired


def replay_refuses_connections(monkeypatch: pytest.MonkeyPatch, db: Database, times: int, after: int = 0
                               ) -> list[str]:
    """Makes `times` connections to db's server, after the first `after`, fail as replay makes a starting session
    fail: a FATAL libpq keeps only the text of. Gives what was refused."""
    real = psycopg.connect
    port = db.parsed.params["port"]
    fired: list[str] = []
    made = itertools.count()

    def connect(conninfo: str = "", *a: Any, **k: Any) -> Any:
        if (psycopg.conninfo.conninfo_to_dict(conninfo, **k).get("port") == port and next(made) >= after
                and len(fired) < times):
            fired.append(conninfo)
            raise psycopg.OperationalError(f'connection failed: connection to server at "127.0.0.1", port {port} '
                                           "failed: FATAL:  canceling statement due to conflict with recovery")
        return real(conninfo, *a, **k)

    monkeypatch.setattr(psycopg, "connect", connect)
    return fired
