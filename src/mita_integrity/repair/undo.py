"""`undo RUN_ID`: what a fix run changed or removed, put back — all or nothing, never overwriting.

Three modes: a dry run (the default) restores in a transaction it rolls back, so it names exactly what
would come back and every conflict with its reason; ALL restores everything in one transaction, or —
when any row conflicts — nothing; PARTIAL restores what it can and lists the rest.

The archive rows of the run are walked newest first (so a merged keeper is reverted before its removed
copies return, and a parent comes back before its children). Per consecutive stretch of one table and
action, set-based:
- a removed row is inserted again from its before-image, unless a row with its key exists again;
- a changed row is reverted only if it is still exactly as the fix left it (`after`); a table with a
  BEFORE UPDATE trigger (an updated_at stamp) and no foreign key pointing at it is reverted by delete
  and re-insert, so the trigger cannot re-stamp it and the row comes back byte for byte;
- an inserted row is removed only if it is still as the fix left it.
Anything else — changed again since, gone, or forbidden by a constraint that exists now — is a
conflict. A merge (DUP002, CAL001: a keeper and the copies folded into it) is one unit: when one of its
rows conflicts none of it is restored, since a copy back beside an unreverted keeper counts the key's
spending twice. Restored archive rows are marked, so undo can be re-run and never restores twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import psycopg
from psycopg import errors

from .. import __version__
from ..check.rules.context import Schema, ident, load_schema
from ..database.connection import Database, connect, transaction
from ..database.errors import DatabaseStateError
from ..runs import run_history, store
from .repairs.base import EQ

ARCHIVE = f"{store.SCHEMA}.archive"


class UndoMode(Enum):
    """How much undo may restore: nothing (a dry run), everything or nothing, or what it can."""

    DRY_RUN = "dry-run"
    ALL = "all"
    PARTIAL = "partial"


@dataclass(frozen=True)
class Conflict:
    """An archived row undo did not restore, and why."""

    archive_id: int
    table: str
    action: str
    pk: dict[str, Any]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"archive_id": self.archive_id, "table": self.table, "action": self.action, "pk": self.pk,
                "reason": self.reason}


@dataclass
class UndoOutcome:
    """What an undo run restored, and what it could not."""

    run_id: str | None  # None for a dry run, which records nothing
    undone_run: str
    restored: int = 0  # in a dry run, or when ALL met a conflict: what would have been restored
    pending_before: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    seconds: float = 0.0
    mode: UndoMode = UndoMode.ALL
    applied: bool = False  # whether the restored rows were committed

    def summary(self) -> dict[str, Any]:
        return {"undone_run": self.undone_run, "mode": self.mode.value, "applied": self.applied,
                "restored": self.restored if self.applied else 0,
                "restorable": self.restored, "pending_before": self.pending_before,
                "conflicts": [c.to_json() for c in self.conflicts[:1000]], "conflict_count": len(self.conflicts),
                "seconds": round(self.seconds, 3)}


class _Segment:
    """Restores one stretch of archive rows of one table and action (inside the caller's transaction)."""

    def __init__(self, cur: psycopg.Cursor[Any], schema: Schema, table: str):
        self.cur, self.schema, self.table = cur, schema, table
        self.name, self.pk = ident(table), ident(schema.primary_keys[table])  # quoted, for the SQL
        # The catalog's functions and key equality, named (repairs/base.py, EQ): undo runs under public, for the
        # application's triggers, and public.jsonb_populate_record(public.goals, jsonb) would beat the built-in.
        self.key = f"t.{self.pk} {EQ} (pg_catalog.jsonb_populate_record(NULL::{self.name}, a.pk)).{self.pk}"
        self.same = f"{self.key} AND pg_catalog.to_jsonb(t) {EQ} a.after"

    def _run(self, statement: str, ids: list[int]) -> tuple[list[int], dict[int, str]]:
        """Runs a statement returning archive ids, set-based; on a constraint error, row by row."""
        try:
            with self.cur.connection.transaction():
                self.cur.execute(statement, (ids,))
                return [r[0] for r in self.cur.fetchall()], {}
        except (errors.IntegrityError, errors.DataError):
            pass
        done: list[int] = []
        failed: dict[int, str] = {}
        for archive_id in ids:
            try:
                with self.cur.connection.transaction():
                    self.cur.execute(statement, ([archive_id],))
                    done.extend(r[0] for r in self.cur.fetchall())
            except (errors.IntegrityError, errors.DataError) as exc:
                failed[archive_id] = f"a constraint forbids it now: {exc.diag.message_primary}"
        return done, failed

    def _insert_before(self, ids: list[int]) -> tuple[list[int], dict[int, str]]:
        self.cur.execute(f"SELECT a.id FROM {ARCHIVE} a WHERE a.id = ANY(%s) "
                         f"AND EXISTS (SELECT 1 FROM {self.name} t WHERE {self.key})", (ids,))
        present = {r[0]: "a row with this key exists again" for r in self.cur.fetchall()}
        todo = [i for i in ids if i not in present]
        if not todo:
            return [], present
        done, failed = self._run(
            f"WITH r AS (SELECT a.id AS mita_archive_id, x.* FROM {ARCHIVE} a, "
            f"pg_catalog.jsonb_populate_record(NULL::{self.name}, a.before) x WHERE a.id = ANY(%s)), "
            f"ins AS (INSERT INTO {self.name} OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join(f'r.{c}' for c in self.columns)} FROM r RETURNING {self.pk}) "
            f"SELECT r.mita_archive_id FROM r JOIN ins ON ins.{self.pk} {EQ} r.{self.pk}", todo)
        return done, {**present, **failed}

    @property
    def columns(self) -> list[str]:
        return [ident(c) for c in self.schema.columns[self.table]]

    def _replaces(self) -> bool:
        """Tells whether reverting must delete and re-insert (a BEFORE UPDATE row trigger, no FK points here)."""
        if any(c.kind == "f" and c.ref_table == self.table for c in self.schema.constraints):
            return False
        self.cur.execute("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal "
                         "AND tgenabled <> 'D' AND tgtype & 19 = 19)", (f"public.{self.name}",))
        row = self.cur.fetchone()
        return bool(row and row[0])

    def _why_not(self, ids: list[int]) -> dict[int, str]:
        self.cur.execute(f"SELECT a.id, EXISTS (SELECT 1 FROM {self.name} t WHERE {self.key}) FROM {ARCHIVE} a "
                         "WHERE a.id = ANY(%s)", (ids,))
        return {i: "changed again since the fix" if there else "the row no longer exists"
                for i, there in self.cur.fetchall()}

    def restore(self, action: str, ids: list[int]) -> tuple[list[int], dict[int, str]]:
        if action == "delete":
            return self._insert_before(ids)
        if action == "insert":
            done, failed = self._run(f"DELETE FROM {self.name} t USING {ARCHIVE} a WHERE a.id = ANY(%s) "
                                     f"AND {self.same} RETURNING a.id", ids)
        elif self._replaces():
            self.cur.execute(f"DELETE FROM {self.name} t USING {ARCHIVE} a WHERE a.id = ANY(%s) AND {self.same} "
                             "RETURNING a.id", (ids,))
            removed = [r[0] for r in self.cur.fetchall()]
            done, failed = self._insert_before(removed) if removed else ([], {})
        else:
            cols = self.columns
            done, failed = self._run(
                f"UPDATE {self.name} t SET ({', '.join(cols)}) = ROW({', '.join(f'r.{c}' for c in cols)}) "
                f"FROM {ARCHIVE} a, pg_catalog.jsonb_populate_record(NULL::{self.name}, a.before) r "
                f"WHERE a.id = ANY(%s) AND {self.same} RETURNING a.id", ids)
        rest = [i for i in ids if i not in done and i not in failed]
        return done, {**failed, **(self._why_not(rest) if rest else {})}


def _segments(rows: list[tuple[Any, ...]]) -> list[tuple[str, str, list[int]]]:
    """Cuts archive rows (newest first) into stretches of one table and action in which no row appears twice.

    One statement can revert a row only once: when a run changed a row twice (a merged keeper whose
    spent_amount was then recomputed), the newer change is reverted first, in its own statement.
    """
    out: list[tuple[str, str, list[int]]] = []
    seen: set[str] = set()
    for archive_id, table, action, pk in rows:
        if not out or out[-1][:2] != (table, action) or pk in seen:
            out.append((table, action, []))
            seen = set()
        out[-1][2].append(archive_id)
        seen.add(pk)
    return out


def _pending(cur: psycopg.Cursor[Any], run_id: str) -> tuple[int, list[str]]:
    cur.execute(f"SELECT count(*) FILTER (WHERE restored_at IS NULL), array_agg(DISTINCT restored_by::text) "
                f"FILTER (WHERE restored_by IS NOT NULL) FROM {ARCHIVE} WHERE run_id = %s", (run_id,))
    row = cur.fetchone()
    return (int(row[0]), list(row[1] or [])) if row else (0, [])


def _preflight(cur: psycopg.Cursor[Any], run_id: str) -> None:
    """Raises one clear error when the role may not restore this run's rows (before anything changes)."""
    store.refuse_read_only(cur, "undo")
    cur.execute(f"SELECT DISTINCT table_name FROM {ARCHIVE} WHERE run_id = %s AND restored_at IS NULL ORDER BY 1",
                (run_id,))
    missing = []
    for (table,) in cur.fetchall():
        lacking = [p for p in ("SELECT", "INSERT", "UPDATE", "DELETE") if not store.table_privilege(cur, table, p)]
        if lacking:
            missing.append(f"{', '.join(lacking)} on {table}")
    store.refuse_lacking(cur, "undo", missing + store.missing_privileges(cur, store.UNDO_NEEDS))


# The archive rows of one merge: every daily_plan row a DUP002/CAL001 repair touched, keyed by the calendar
# key its before-image had, plus any later change of the same row in the run (BUD001 recomputing the keeper).
_MERGE_UNITS = f"""WITH m AS (
  SELECT id, pk, pg_catalog.jsonb_build_array(before->>'user_id',
           ((before->>'date')::timestamptz AT TIME ZONE 'UTC')::date, before->>'category')::text AS unit
    FROM {ARCHIVE} WHERE run_id = %(run)s AND restored_at IS NULL AND table_name = 'daily_plan'
     AND rule_code IN ('DUP002', 'CAL001') AND before IS NOT NULL)
SELECT a.id, u.unit FROM {ARCHIVE} a JOIN (SELECT DISTINCT pk, unit FROM m) u ON a.pk = u.pk
 WHERE a.run_id = %(run)s AND a.restored_at IS NULL AND a.table_name = 'daily_plan'"""

_IN_A_MERGE = ("part of a merge whose other rows cannot be restored (restoring it alone would count the key's "
               "spending twice or lose it)")


class _Retry(Exception):
    """Rolls back a restoring pass that must be run again without the rows of blocked merges."""


class _Discard(Exception):
    """Rolls back everything a pass restored: a dry run, or ALL with a conflict."""


def undo_run(db: Database, run_text: str, batch_size: int = 5_000,
             progress: Callable[[int], None] | None = None, *, mode: UndoMode = UndoMode.ALL) -> UndoOutcome:
    """Restores (or, in a dry run, tries) what fix run `run_text` changed; gives the count and the conflicts."""
    started = time.perf_counter()
    with connect(db) as conn:
        with transaction(conn, read_only=True) as cur:
            target = run_history.get_run(cur, run_text)
            if target.kind != "fix":
                raise DatabaseStateError(f"run {target.id} is a {target.kind} run: only fix runs can be undone",
                                         "list them with: mita-integrity runs")
            pending, undone_by = _pending(cur, target.id)
            if pending == 0:
                by = f" by run {', '.join(undone_by)}" if undone_by else ""
                raise DatabaseStateError(f"run {target.id} has nothing left to restore (already undone{by})"
                                         if undone_by else f"run {target.id} changed no rows: nothing to restore")
            schema = load_schema(cur)
            _preflight(cur, target.id)
        if mode is not UndoMode.DRY_RUN:
            store.ensure(conn)  # the first write upgrades the integrity schema in place (integrity_schema.py)
        undo_id = (None if mode is UndoMode.DRY_RUN else
                   store.start_run(conn, "undo", {"run": target.id, "batch_size": batch_size, "mode": mode.value},
                                   __version__))
        outcome = UndoOutcome(None if undo_id is None else str(undo_id), target.id, pending_before=pending,
                              mode=mode)
        status = "failed"
        try:
            try:
                with transaction(conn, lock_timeout_ms=5_000, statement_timeout_ms=300_000) as cur:
                    restored, conflicts = _restore_units(cur, schema, target.id, undo_id, batch_size, progress)
                    outcome.restored, outcome.conflicts = restored, conflicts
                    if mode is UndoMode.DRY_RUN or (mode is UndoMode.ALL and conflicts):
                        raise _Discard
            except _Discard:
                outcome.applied = False
            else:
                outcome.applied = True
            status = "completed" if outcome.applied else "failed"
        finally:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            _fill_keys(conn, outcome)
            outcome.seconds = time.perf_counter() - started
            if undo_id is not None:
                store.finish_run(conn, undo_id, status, outcome.summary())
    return outcome


def _restore_units(cur: psycopg.Cursor[Any], schema: Schema, run_id: str, undo_id: uuid.UUID | None,
                   batch_size: int, progress: Callable[[int], None] | None) -> tuple[int, list[Conflict]]:
    """Restores the run's pending rows, keeping each merge whole; gives the count restored and the conflicts.

    A pass restores everything it can under a savepoint; when a conflict falls in a merge, the pass is
    rolled back and run again without every row of that merge, until no merge is broken.
    """
    cur.execute(_MERGE_UNITS, {"run": run_id})
    unit_of = dict(cur.fetchall())
    members: dict[str, set[int]] = {}
    for archive_id, unit in unit_of.items():
        members.setdefault(unit, set()).add(archive_id)
    held: set[int] = set()
    own: dict[int, Conflict] = {}  # the conflict a held row met itself, in the pass that broke its merge
    while True:
        try:
            with cur.connection.transaction():
                restored, failed = _restore_pass(cur, schema, run_id, undo_id, batch_size, held, progress)
                broken = {i for c in failed if (u := unit_of.get(c.archive_id)) for i in members[u]} - held
                if broken:
                    own.update({c.archive_id: c for c in failed if c.archive_id in broken})
                    held |= broken
                    raise _Retry
        except _Retry:
            progress = None  # the bar counted the first pass
            continue
        conflicts = failed + [own.get(i) or Conflict(i, "daily_plan", "", {}, _IN_A_MERGE)
                              for i in sorted(held - {c.archive_id for c in failed}, reverse=True)]
        return restored, conflicts


def _restore_pass(cur: psycopg.Cursor[Any], schema: Schema, run_id: str, undo_id: uuid.UUID | None,
                  batch_size: int, held: set[int], progress: Callable[[int], None] | None
                  ) -> tuple[int, list[Conflict]]:
    """Restores the pending rows not held back, newest first, batch by batch; gives the count and conflicts."""
    restored_total = 0
    conflicts: list[Conflict] = []
    last: int | None = None
    while True:
        cur.execute(f"SELECT id, table_name, action, pk::text FROM {ARCHIVE} WHERE run_id = %s "
                    "AND restored_at IS NULL AND (%s::bigint IS NULL OR id < %s) AND NOT (id = ANY(%s)) "
                    "ORDER BY id DESC LIMIT %s FOR UPDATE",
                    (run_id, last, last, list(held), batch_size))
        rows = cur.fetchall()
        if not rows:
            return restored_total, conflicts
        restored: list[int] = []
        for table, action, ids in _segments(rows):
            done, failed = _Segment(cur, schema, table).restore(action, ids)
            restored += done
            conflicts += [Conflict(i, table, action, {}, why) for i, why in failed.items()]
        if undo_id is not None:
            cur.execute(f"UPDATE {ARCHIVE} SET restored_by = %s, restored_at = now() WHERE id = ANY(%s)",
                        (undo_id, restored))
        restored_total += len(restored)
        last = rows[-1][0]
        if progress:
            progress(len(rows))


def _fill_keys(conn: psycopg.Connection[Any], outcome: UndoOutcome) -> None:
    """Adds the primary keys to the first conflicts (for the listing)."""
    shown = outcome.conflicts[:1000]
    if not shown:
        return
    with transaction(conn, read_only=True) as cur:
        cur.execute(f"SELECT id, pk, action FROM {ARCHIVE} WHERE id = ANY(%s)", ([c.archive_id for c in shown],))
        keys = {i: (pk, action) for i, pk, action in cur.fetchall()}
    outcome.conflicts[:len(shown)] = [Conflict(c.archive_id, c.table, keys.get(c.archive_id, ({}, c.action))[1],
                                               keys.get(c.archive_id, ({}, c.action))[0], c.reason) for c in shown]
