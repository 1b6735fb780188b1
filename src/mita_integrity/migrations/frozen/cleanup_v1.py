"""The clean-up of the migrations 0022-0027, version 1 — frozen: never edit this file.

Data a new constraint would reject is repaired first, with archive, exactly as `fix --apply` repaired it when
those migrations were written: each migration's module (r0022.py …) carries the SQL of its steps as
`fix` rendered it then, and this module runs them the way `fix --apply` ran them then. For each step, a
read-only snapshot on a second connection streams the units to repair (a server-side cursor); each batch is
one short transaction on the writing connection: SET LOCAL lock_timeout, lock the rows FOR UPDATE SKIP
LOCKED, re-test the violation, archive the before-image in integrity.archive, change. A batch that cannot
get its locks is retried, then left for another pass. The run is recorded (kind fix, options.migration =
the revision) through the Host, so `mita-integrity undo <run>` puts the rows back.

The statements name the run as the literal '<run id>'::uuid, replaced by the run's id (a uuid the tool
made) before they run. tests/test_migration_freeze.py fails when this file changes: add a cleanup_v2.py.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors, sql

from .kit_v1 import host, say
from .online_v1 import counted, pin_settings

RUN_MARK = "'<run id>'::uuid"
LOCK_RETRIES = 3
TARGET_SECONDS = 0.1  # the longest a batch should hold its locks (a concurrent writer waits at most that)
START_SIZE = 250
BATCH_SIZE = 5_000
PASSES = 3  # a pass more picks up what other sessions had locked
LOCK_TIMEOUT_MS = 2_000
STATEMENT_TIMEOUT_MS = 300_000


@dataclass(frozen=True)
class Dependent:
    """Rows referencing a removed row through an ON DELETE CASCADE (removed too) or SET NULL (nulled) key."""

    child: str
    select: str  # the child's keys referencing the batch (one positional parameter: the parent keys)
    cascade: bool
    change: str  # the archived DELETE (cascade) or UPDATE … = NULL of those keys, %(ids)s
    dependents: tuple[Dependent, ...] = ()


@dataclass(frozen=True)
class RowStep:
    """Archive then delete the violating rows (still empty), or archive then update them (still: re-test)."""

    code: str
    table: str
    candidates: str
    lock: str  # %(ids)s
    change: str  # %(ids)s
    still: str = ""  # after an update: the rows that still violate (%(ids)s), put back and left to a person
    dependents: tuple[Dependent, ...] = ()


@dataclass(frozen=True)
class MergeStep:
    """Merge the rows of a calendar key (user, day, category) into its keeper, at midnight."""

    code: str
    table: str
    candidates: str
    lock: str
    members: str
    unfit: str
    delete: str
    keeper: str


@dataclass(frozen=True)
class RecomputeStep:
    """spent_amount := the sum of the key's live transactions; a missing plan row inserted."""

    code: str
    table: str
    candidates: str
    lock: str
    sums: str
    update: str
    insert: str


Step = RowStep | MergeStep | RecomputeStep


@dataclass
class Done:
    """What a batch, or a step, did."""

    changed: int = 0
    archived: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: Done) -> None:
        self.changed += other.changed
        self.archived += other.archived
        self.skipped += other.skipped
        self.notes.extend(n for n in other.notes if n not in self.notes)


@contextmanager
def _transaction(conn: psycopg.Connection[Any], *, read_only: bool = False) -> Iterator[psycopg.Cursor[Any]]:
    with conn.transaction(), conn.cursor() as cur:
        if read_only:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pin_settings(cur, local=True)
        if not read_only:
            cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(str(STATEMENT_TIMEOUT_MS))))
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(str(LOCK_TIMEOUT_MS))))
        yield cur


def _units(reader: psycopg.Connection[Any], query: str, size: int) -> Generator[list[tuple[Any, ...]], None, None]:
    """Streams the candidates of one step from a consistent read-only snapshot, `size` at a time."""
    with reader.transaction():
        with reader.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            pin_settings(cur, local=True)
        with reader.cursor(name="mita_fix_candidates") as stream:
            stream.execute(query.encode())
            while rows := stream.fetchmany(size):
                yield rows


def _keys(units: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {"users": [u[0] for u in units], "days": [u[1] for u in units], "cats": [u[2] for u in units]}


def _remove_dependents(cur: psycopg.Cursor[Any], deps: Sequence[Dependent], ids: list[Any], run: str) -> Done:
    done = Done()
    for dep in deps:
        cur.execute(dep.select, (ids,))
        child_ids = [r[0] for r in cur.fetchall()]
        if not child_ids:
            continue
        if dep.cascade:
            done.add(_remove_dependents(cur, dep.dependents, child_ids, run))
        cur.execute(dep.change.replace(RUN_MARK, run), {"ids": child_ids})
        done.add(Done(changed=cur.rowcount, archived=cur.rowcount))
        done.notes.append(f"{len(child_ids)} {dep.child} rows referencing them archived too (ON DELETE)")
    return done


def _rows(cur: psycopg.Cursor[Any], step: RowStep, units: Sequence[tuple[Any, ...]], run: str) -> Done:
    cur.execute(step.lock, {"ids": [u[0] for u in units]})
    locked = [r[0] for r in cur.fetchall()]
    done = Done(skipped=len(units) - len(locked))
    if not locked:
        return done
    change = step.change.replace(RUN_MARK, run)
    if not step.still:
        done.add(_remove_dependents(cur, step.dependents, locked, run))
        cur.execute(change, {"ids": locked})
        done.add(Done(changed=cur.rowcount, archived=cur.rowcount))
        return done
    # An update verifies its own effect: a row a trigger put back (or that still violates) is restored and
    # left to a person, never archived and changed again on every run.
    ids, stuck, mended = locked, [], Done()
    while ids:
        with cur.connection.transaction() as savepoint:
            cur.execute(change, {"ids": ids})
            mended = Done(changed=cur.rowcount, archived=cur.rowcount)
            cur.execute(step.still, {"ids": ids})
            stuck_now = [r[0] for r in cur.fetchall()]
            if not stuck_now:
                break
            stuck += stuck_now
            ids = [i for i in ids if i not in set(stuck)]
            raise psycopg.Rollback(savepoint)
    else:
        mended = Done()
    if stuck:
        mended.notes.append(f"rows this repair does not mend (e.g. {stuck[0]}: the row still violates {step.code} "
                            "after the change, which was undone) need a person")
    done.add(mended)
    return done


def _merge(cur: psycopg.Cursor[Any], step: MergeStep, units: Sequence[tuple[Any, ...]], run: str) -> Done:
    cur.execute(step.lock, _keys(units))
    locked = [r[0] for r in cur.fetchall()]
    cur.execute(step.members, {**_keys(units), "locked": locked})
    cur.execute(step.unfit.encode())
    too_big = cur.rowcount
    cur.execute("SELECT count(DISTINCT (day, img->>'user_id', img->>'category')) FROM mita_fix_members")
    row = cur.fetchone()
    merged_keys = int(row[0]) if row else 0
    cur.execute(step.delete.replace(RUN_MARK, run).encode())
    removed = cur.rowcount
    cur.execute(step.keeper.replace(RUN_MARK, run).encode())
    updated = cur.rowcount
    cur.execute("DROP TABLE mita_fix_members")
    done = Done(changed=removed + updated, archived=removed + updated, skipped=len(units) - merged_keys)
    if too_big:
        done.notes.append("keys whose merged spent or planned amount is 10^10 or more (numeric(12,2) cannot hold "
                          "it) were left alone: they need a person")
    return done


def _recompute(cur: psycopg.Cursor[Any], step: RecomputeStep, units: Sequence[tuple[Any, ...]], run: str) -> Done:
    cur.execute(step.lock, _keys(units))
    locked = [r[0] for r in cur.fetchall()]
    cur.execute(step.sums, {**_keys(units), "locked": locked})
    cur.execute("SELECT count(*) FILTER (WHERE n > 1), count(*) FILTER (WHERE n IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM users u WHERE u.id = s.user_id)), count(*) FILTER (WHERE NOT fits) "
                "FROM mita_fix_sums s")
    row = cur.fetchone() or (0, 0, 0)
    several, nobody, too_big = int(row[0]), int(row[1]), int(row[2])
    cur.execute(step.update.replace(RUN_MARK, run).encode())
    updated = cur.rowcount
    cur.execute(step.insert.replace(RUN_MARK, run).encode())
    inserted = cur.rowcount
    cur.execute("DROP TABLE mita_fix_sums")
    done = Done(changed=updated + inserted, archived=updated + inserted, skipped=len(units) - updated - inserted)
    if several:
        done.notes.append(f"{several} keys have several plan rows: merge them first "
                          "(mita-integrity fix --apply --select DUP002)")
    if too_big:
        done.notes.append(f"{too_big} keys spend 10^10 or more, which numeric(12,2) cannot hold: left alone, "
                          "they need a person (BUD002)")
    if nobody:
        done.notes.append("keys of users that no longer exist get no plan row: their transactions are orphans "
                          "(REF001), removed by `fix --apply --select REF001` or migration 0026")
    return done


def _batch(writer: psycopg.Connection[Any], step: Step, units: list[tuple[Any, ...]], run: str) -> Done:
    """Runs one batch as one transaction; retries a batch that could not get its locks."""
    for attempt in range(LOCK_RETRIES):
        try:
            with _transaction(writer) as cur:
                if isinstance(step, RowStep):
                    return _rows(cur, step, units, run)
                if isinstance(step, MergeStep):
                    return _merge(cur, step, units, run)
                return _recompute(cur, step, units, run)
        except errors.LockNotAvailable:
            time.sleep(0.2 * (attempt + 1))
    return Done(skipped=len(units), notes=["some rows stayed locked by other sessions: re-run fix"])


def _step(reader: psycopg.Connection[Any], writer: psycopg.Connection[Any], step: Step, run: str) -> Done:
    """Repairs one step, batch by batch, in up to PASSES passes; the batch size adapts to TARGET_SECONDS."""
    out = Done()
    size = START_SIZE
    for n in range(1, PASSES + 1):
        skipped_before = out.skipped
        stream = _units(reader, step.candidates, BATCH_SIZE)
        try:
            for chunk in stream:
                while chunk:
                    units, chunk = chunk[:size], chunk[size:]
                    started = time.perf_counter()
                    out.add(_batch(writer, step, units, run))
                    took = time.perf_counter() - started
                    if took > TARGET_SECONDS:
                        size = max(1, int(size * TARGET_SECONDS / took * 0.8))
                    elif took < TARGET_SECONDS / 3:
                        size = min(BATCH_SIZE, size * 2)
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                stream.close()
            raise
        if out.skipped == skipped_before:
            break
        if n < PASSES:
            out.skipped = skipped_before  # what this pass skipped, the next one takes up again
    return out


def _count(reader: psycopg.Connection[Any], query: str) -> int:
    with _transaction(reader, read_only=True) as cur:
        cur.execute(f"SELECT count(*) FROM ({query}) c".encode())
        row = cur.fetchone()
    return int(row[0]) if row else 0


def clean_up(revision: str, steps: Sequence[Step], *, budget_days: int = 30) -> int:
    """Runs the steps with archive as one recorded fix run; gives the rows changed."""
    the_host = host()
    codes = list(dict.fromkeys(s.code for s in steps))
    with contextlib.closing(the_host.connect()) as writer, contextlib.closing(the_host.connect()) as reader:
        todo = [s for s in steps if _count(reader, s.candidates)]
        if not todo:
            say(f"    clean-up ({', '.join(codes)}): nothing to repair")
            return 0
        options = {"select": codes, "ignore": [], "unsafe": False, "batch_size": BATCH_SIZE, "max_rows": None,
                   "budget_days": budget_days, "day_boundary": "utc", "migration": revision}
        run_id = the_host.start_run(writer, options)
        run = f"'{uuid.UUID(str(run_id))}'::uuid"
        results: list[tuple[Step, Done, int]] = []
        status = "failed"
        started = time.perf_counter()
        try:
            for step in todo:
                done = _step(reader, writer, step, run)
                results.append((step, done, _count(reader, step.candidates)))
            status = "completed"
        finally:
            if writer.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                writer.rollback()
            changed = sum(d.changed for _, d, _ in results)
            archived = sum(d.archived for _, d, _ in results)
            summary = {"changed": changed, "archived": archived,
                       "seconds": round(time.perf_counter() - started, 3),
                       "rules": [{"code": s.code, "table": s.table, "safety": "safe", "changed": d.changed,
                                  "archived": d.archived, "skipped": d.skipped, "after": left, "notes": d.notes}
                                 for s, d, left in results]}
            the_host.finish_run(writer, str(run_id), status, summary)
    for step, done, left in results:
        say(f"    {step.code} {step.table}: {counted(done.changed, 'row')} repaired, archived in run {run_id} "
            f"({left} left)")
        for note in done.notes if left else ():
            say(f"      left: {note}")
    say(f"    clean-up archived {counted(archived, 'row')}; `mita-integrity undo {run_id}` would put them back")
    return changed
