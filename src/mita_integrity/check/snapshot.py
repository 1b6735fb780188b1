"""The check's snapshot: one READ ONLY, REPEATABLE READ transaction on its own connection, a second connection
in the same snapshot where there can be one, and a new snapshot when a hot standby's replay cancels the old one.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg import sql

from ..database.connection import POOL_MODE_ENV, SUPABASE_TRANSACTION_PORT, Database, connect, transaction
from ..database.errors import MitaIntegrityError, connection_lost, is_connection_lost, lost_on_standby, on_standby

# What a standby counts of the sessions and queries its replay cancelled (pg_stat_database_conflicts), in the
# check's database: a session lost without a word is replay's only when this grew meanwhile. PostgreSQL 16 counts
# one cause more (a logical replication slot on the standby that replay invalidated, its session ended).
_CONFLICT_COLUMNS = ("confl_tablespace", "confl_lock", "confl_snapshot", "confl_bufferpin", "confl_deadlock")
_CONFLICT_COLUMNS_16 = (*_CONFLICT_COLUMNS, "confl_active_logicalslot")


def conflicts_sql(server_version: int) -> str:
    """Gives the statement summing every cause of cancellation the server counts."""
    columns = _CONFLICT_COLUMNS_16 if server_version >= 160000 else _CONFLICT_COLUMNS
    return (f"SELECT {' + '.join(columns)} FROM pg_catalog.pg_stat_database_conflicts "
            "WHERE datname = pg_catalog.current_database()")


def _conflicts(cur: psycopg.Cursor[Any]) -> int | None:
    cur.execute(conflicts_sql(cur.connection.info.server_version))
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else None


class Snapshot:
    """The check's one READ ONLY, REPEATABLE READ transaction on its own connection.

    On a hot standby replay may cancel it (a recovery conflict); `reopen` then gives a cursor in a new
    snapshot on a new connection, with the rules' limits, and the engine carries on with that.
    """

    def __init__(self, db: Database, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        self.db, self.statement_timeout_ms, self.lock_timeout_ms = db, statement_timeout_ms, lock_timeout_ms
        self.opened = 0
        self.conflicts: int | None = None  # on a standby: its count of cancelled work, when the snapshot opened
        self._stack = ExitStack()
        self._conn: psycopg.Connection[Any] | None = None
        self.last_connection: psycopg.Connection[Any] | None = None  # kept after close: the server's reports
        self._others: list[psycopg.Connection[Any]] = []

    def open(self, statement_timeout_ms: int) -> psycopg.Cursor[Any]:
        """Gives a cursor in a new snapshot; the previous one, if any, is abandoned (closed, never committed)."""
        self.close()
        self._conn = self.last_connection = self._stack.enter_context(connect(self.db))
        cur = self._stack.enter_context(transaction(self._conn, read_only=True, repeatable_read=True,
                                                    statement_timeout_ms=statement_timeout_ms,
                                                    lock_timeout_ms=self.lock_timeout_ms))
        self.opened += 1
        self.conflicts = None
        if on_standby(self._conn):
            self.conflicts = _conflicts(cur)
        return cur

    def reopen(self, cause: psycopg.Error, statement_timeout_ms: int | None = None) -> psycopg.Cursor[Any]:
        """Gives a cursor in a new snapshot after `cause`, a recovery conflict (engine.recovery_conflict), cost the
        old one. Replay may refuse the new session as it starts: psycopg's error then, for the caller's retry.

        A session lost without a SQLSTATE (`cause`) is replay's only if the standby counted a cancelled query or
        session since the old snapshot opened (pg_stat_database_conflicts: the ended session's counts are
        written before its socket closes): else it is what it looks like (a dropped network, a crash), and the
        check stops in one line.
        """
        unheard = lost_on_standby(cause, self.last_connection)
        before = self.conflicts
        try:
            cur = self.open(self.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms)
        except MitaIntegrityError:
            if unheard:  # the standby restarting, or gone: the loss was that, not replay's
                raise connection_lost(cause, "check", "nothing was changed (a check only reads)") from None
            raise
        # (No count before: the session was lost as it started, before it could read one. Nothing to compare:
        # replay's, as most likely on a standby; a network that stays down then fails the new session.)
        if unheard and before is not None and self.conflicts is not None and self.conflicts <= before:
            raise connection_lost(cause, "check", "nothing was changed (a check only reads)")
        return cur

    def share(self, cur: psycopg.Cursor[Any]) -> tuple[psycopg.Cursor[Any], psycopg.Cursor[Any] | None, str]:
        """Gives the snapshot's cursor, one on a second connection in the same snapshot (or None), and why.

        The second connection imports the first one's snapshot (pg_export_snapshot / SET TRANSACTION
        SNAPSHOT), so the report stays one consistent view of the database while both cores work. Where
        that cannot work — a transaction pooler (the snapshot's session is not ours to share), a hot standby
        (replay may cancel either side, and the retry in a new snapshot needs one connection), a server that
        refuses — the check keeps to one connection.
        """
        pooled = _pooler(self.db, cur)
        if pooled:
            return cur, None, f"one connection: {pooled}"
        cur.execute("SELECT pg_is_in_recovery()")
        row = cur.fetchone()
        if row and row[0]:
            return cur, None, "one connection: a hot standby (a recovery conflict is retried in a new snapshot)"
        try:
            # Not in a savepoint: a snapshot cannot be exported from a subtransaction.
            cur.execute("SELECT pg_export_snapshot()")
            row = cur.fetchone()
        except psycopg.Error as exc:
            if is_connection_lost(exc, cur.connection):
                raise
            # The snapshot's transaction is aborted: nothing was read in it yet but the schema; start again.
            return self.open(self.statement_timeout_ms), None, (
                f"one connection: the server cannot export the snapshot ({_first_line(exc)})")
        assert row is not None
        try:
            conn = self._stack.enter_context(connect(self.db))
            second = self._stack.enter_context(transaction(
                conn, read_only=True, repeatable_read=True, statement_timeout_ms=60_000,
                lock_timeout_ms=self.lock_timeout_ms))
            second.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(row[0])))
            second.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(f"{self.statement_timeout_ms}ms")))
        except psycopg.Error as exc:
            if is_connection_lost(exc, cur.connection):
                raise
            return cur, None, (
                f"one connection: the server refused a second one in the same snapshot ({_first_line(exc)})")
        self._others.append(conn)
        return cur, second, "two connections in one snapshot (pg_export_snapshot)"

    def close(self) -> None:
        for other in self._others:
            other.close()
        self._others = []
        if self._conn is not None:
            self._conn.close()  # a read-only transaction: nothing to commit; the exits below are then no-ops
        self._stack.close()
        self._conn = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _pooler(db: Database, cur: psycopg.Cursor[Any]) -> str | None:
    """Tells (why) a transaction pooler may stand in between, without opening another connection."""
    declared = os.environ.get(POOL_MODE_ENV, "").strip().lower()
    if declared in {"session", "direct"}:
        return None
    if declared == "transaction":
        return f"{POOL_MODE_ENV}=transaction"
    if db.parsed.pgbouncer:
        return "the URL says pgbouncer=true"
    if SUPABASE_TRANSACTION_PORT in db.parsed.params.get("port", "").split(","):
        return f"port {SUPABASE_TRANSACTION_PORT} is a transaction pooler"
    cur.execute("SELECT pg_backend_pid()")
    row = cur.fetchone()
    if row is None or row[0] != cur.connection.info.backend_pid:
        return "a pooler answers there"
    return None
