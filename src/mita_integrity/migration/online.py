"""Online-safe DDL for the migrations: short locks with retries, NOT VALID then VALIDATE, concurrent indexes.

Every step is idempotent — it reads the live catalog and does only what is missing — so a migration that
was interrupted (or a database whose constraints were added by hand, or stamped past a revision) can be
run again. Each step is its own short transaction with `SET LOCAL lock_timeout`: a step that cannot get
its lock gives up quickly (writers queued behind it are released) and is retried with backoff.
`CREATE INDEX CONCURRENTLY` runs outside any transaction; an invalid leftover of an interrupted build is
dropped and built again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors, sql

from ..database.connection import pin_settings
from ..database.errors import DatabaseStateError
from ..wording import counted

DEFAULT_LOCK_TIMEOUT_MS = int(os.environ.get("MITA_MIGRATION_LOCK_TIMEOUT_MS", "2000"))
ATTEMPTS = 12


@dataclass
class Online:
    """Runs DDL steps on an autocommit psycopg connection, online."""

    conn: psycopg.Connection[Any]
    say: Callable[[str], None] = print
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
    pending: list[str] = field(default_factory=list)  # constraints left NOT VALID, with their reason

    def __post_init__(self) -> None:
        if not self.conn.autocommit:
            raise RuntimeError("Online needs an autocommit connection (migrations run it in autocommit_block)")

    # -- running ------------------------------------------------------------------------------------------
    def step(self, label: str, *statements: str) -> None:
        """Runs statements in one short transaction; retries with backoff when a lock is not granted."""
        delay = 0.05
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{self.lock_timeout_ms}ms")))
                    cur.execute("SET LOCAL statement_timeout = 0")
                    pin_settings(cur, local=True)  # TimeZone, search_path …: a pooler may switch backends
                    for statement in statements:
                        cur.execute(statement.encode())
                return
            except errors.LockNotAvailable:
                if attempt == ATTEMPTS:
                    raise DatabaseStateError(
                        f"{label}: could not get its lock in {ATTEMPTS} tries of {self.lock_timeout_ms} ms",
                        "a long transaction holds the table; find it in pg_stat_activity, then run the migration "
                        "again (it continues where it stopped)") from None
                self.say(f"    {label}: lock not granted, retrying in {delay:.2f} s")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def outside(self, label: str, statement: str) -> None:
        """Runs one statement outside a transaction (DROP INDEX CONCURRENTLY), with lock retries."""
        delay = 0.05
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._outside_once(statement)
                return
            except errors.LockNotAvailable:
                if attempt == ATTEMPTS:
                    raise DatabaseStateError(f"{label}: could not get its lock in {ATTEMPTS} tries") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _outside_once(self, statement: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{self.lock_timeout_ms}ms")))
            cur.execute("SET statement_timeout = 0")
            try:
                cur.execute(statement.encode())
            finally:
                cur.execute("RESET lock_timeout")
                cur.execute("RESET statement_timeout")

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(statement.encode() if not params else statement, params or None)
            return cur.fetchall() if cur.description else []

    # -- the catalog ---------------------------------------------------------------------------------------
    def constraint(self, table: str, name: str) -> tuple[bool, bool] | None:
        """Gives (validated, is_fk) of a constraint of a public table, or None when absent."""
        rows = self.query("SELECT con.convalidated, con.contype = 'f' FROM pg_constraint con "
                          "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = 'public' AND c.relname = %s AND con.conname = %s", table, name)
        return (bool(rows[0][0]), bool(rows[0][1])) if rows else None

    def index_valid(self, name: str) -> bool | None:
        """Gives whether a public index is valid (None when it does not exist)."""
        rows = self.query("SELECT x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                          "JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = 'public' AND i.relname = %s",
                          name)
        return bool(rows[0][0]) if rows else None

    def has_column(self, table: str, column: str) -> bool:
        return bool(self.query("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
                               "AND table_name = %s AND column_name = %s", table, column))

    def run(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Runs a read with psycopg parameters (the shape definitions.Run expects)."""
        return self.query(statement, *params)

    def has_table(self, table: str) -> bool:
        return bool(self.query("SELECT to_regclass(%s)", f"public.{table}")[0][0])

    # -- recipes -------------------------------------------------------------------------------------------
    def ensure_index(self, name: str, table: str, definition: str, *, unique: bool = False) -> None:
        """CREATE [UNIQUE] INDEX CONCURRENTLY name ON table definition, until it is there and valid.

        A concurrent build that fails (a lock timeout while it waits for an old snapshot, a duplicate, a
        cancel) leaves an invalid index behind: it is dropped and built again, never skipped by IF NOT
        EXISTS. When no attempt succeeds, the invalid leftover is dropped and the migration stops.
        """
        kind = "UNIQUE INDEX" if unique else "INDEX"
        delay = 0.05
        for attempt in range(1, ATTEMPTS + 1):
            state = self.index_valid(name)
            if state:
                return
            if state is False:
                self.say(f"    {name}: invalid (a concurrent build cut short); dropping it and building it again")
                self.outside(f"drop invalid {name}", f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
            self.say(f"    building {name} concurrently")
            try:
                self._outside_once(f'CREATE {kind} CONCURRENTLY "{name}" ON {table} {definition}')
            except errors.LockNotAvailable:
                if attempt < ATTEMPTS:
                    self.say(f"    {name}: lock not granted (a long transaction), retrying in {delay:.2f} s")
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
            except errors.UniqueViolation:
                self._drop_invalid(name)  # the caller merges the duplicate and builds again
                raise
        if self.index_valid(name):
            return
        self._drop_invalid(name)
        raise DatabaseStateError(
            f"build {name}: CREATE INDEX CONCURRENTLY did not complete in {ATTEMPTS} tries of "
            f"{self.lock_timeout_ms} ms (it waits for every older transaction to end); nothing invalid was left",
            "a long transaction is open: find it in pg_stat_activity (xact_start), end it, then run the migration "
            "again (it continues where it stopped)")

    def _drop_invalid(self, name: str) -> None:
        """Drops an invalid leftover when its lock comes at once; the next ensure_index drops it otherwise."""
        if self.index_valid(name) is False:
            with contextlib.suppress(errors.LockNotAvailable):
                self._outside_once(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')

    def ensure_fk_index(self, table: str, column: str) -> None:
        """Builds ix_<table>_<column> concurrently unless an index already leads with the column."""
        leading = self.query("SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid "
                             "AND a.attnum = x.indkey[0] WHERE x.indrelid = %s::regclass AND a.attname = %s "
                             "AND x.indisvalid", f"public.{table}", column)
        if not leading:
            self.ensure_index(f"ix_{table}_{column}", table, f"({column})")

    def drop_index(self, name: str) -> None:
        self.outside(f"drop {name}", f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')

    def add_not_valid(self, table: str, name: str, definition: str) -> None:
        """ADD CONSTRAINT … NOT VALID when absent (a brief lock; new writes are checked from now on)."""
        if self.constraint(table, name) is None:
            self.step(f"add {name}", f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition} NOT VALID')
            self.say(f"    added {name} NOT VALID")

    def validate(self, table: str, name: str, violators: str | None = None, where: str | None = None) -> bool:
        """VALIDATE CONSTRAINT (no write lock); on violators leaves it NOT VALID, notes it and gives False.

        `where` selects the violating rows (to print their number and first keys); `violators` says how
        they are resolved.
        """
        state = self.constraint(table, name)
        if state is None:
            raise DatabaseStateError(f"constraint {name} on {table} is missing; it cannot be validated")
        if state[0]:
            return True
        try:
            self.step(f"validate {name}", f'ALTER TABLE {table} VALIDATE CONSTRAINT "{name}"')
        except (errors.CheckViolation, errors.ForeignKeyViolation) as exc:
            reason = f"{name} on {table} stays NOT VALID: {exc.diag.message_primary}"
            if where:
                keys = "(array_agg(t.id::text ORDER BY t.id))[1:5]" if self.has_column(table, "id") else "NULL"
                rows = self.query(f"SELECT count(*), {keys} FROM {table} t WHERE {where}")
                sample = ", ".join(rows[0][1] or [])
                verb = "violates" if rows[0][0] == 1 else "violate"
                reason = f"{name} on {table} stays NOT VALID: {counted(rows[0][0], 'row')} {verb} it ({sample})"
            if violators:
                reason += f" (resolve with: {violators})"
            self.pending.append(reason)
            self.say(f"    {reason}")
            return False
        self.say(f"    validated {name}")
        return True

    def add_constraint(self, table: str, name: str, definition: str, violators: str | None = None) -> bool:
        """The online recipe: NOT VALID, then VALIDATE in a transaction of its own."""
        self.add_not_valid(table, name, definition)
        return self.validate(table, name, violators)

    def drop_constraint(self, table: str, name: str) -> None:
        if self.has_table(table) and self.constraint(table, name) is not None:
            self.step(f"drop {name}", f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"')


def pending_constraints(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str | None]]:
    """Gives (table, constraint, SQL selecting its violating rows as t) of every NOT VALID constraint."""
    with conn.cursor() as cur:
        cur.execute("""SELECT c.relname, con.conname, con.contype, pg_get_expr(con.conbin, con.conrelid),
                              (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.conrelid
                                 AND a.attnum = con.conkey[1]),
                              rc.relname,
                              (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.confrelid
                                 AND a.attnum = con.confkey[1]),
                              cardinality(con.conkey)
                         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                         JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class rc ON rc.oid = con.confrelid
                        WHERE n.nspname = 'public' AND NOT con.convalidated ORDER BY 1, 2""")
        out: list[tuple[str, str, str | None]] = []
        for table, name, kind, expr, column, ref, ref_column, width in cur.fetchall():
            where = None
            if kind == "c" and expr:
                where = f"NOT ({expr})"
            elif kind == "f" and width == 1:
                where = (f"t.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {ref} r "
                         f"WHERE r.{ref_column} = t.{column})")
            out.append((str(table), str(name), where))
        return out
