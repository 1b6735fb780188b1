"""`fix --apply`: the plan executed in small online batches, each its own transaction — archive, then change.

For each rule, in the repairs' order, a read-only snapshot on a second connection streams the units to
repair (a server-side cursor, so memory stays flat); each batch of `--batch-size` units is one short
transaction on the writing connection: SET LOCAL lock_timeout, lock the rows FOR UPDATE SKIP LOCKED,
re-test the violation, archive the before-image, change. A batch that cannot get its locks is retried,
then left for a re-run. A killed process loses at most the batch in flight (rolled back whole), and
re-running finds only what is left. The run is recorded in integrity.runs; a final `check` of the
repaired rules gives the counts after.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors

from .. import __version__
from ..check.run import run_check
from ..database.connection import CATALOG_SEARCH_PATH, Database, connect, pin_settings, transaction
from ..findings import Report
from ..runs import store
from .plan import FixPlan, FixRequest, PlanItem
from .repairs import REPAIRS, BatchOutcome, RepairContext
from .repairs.rows import dependents

Progress = Callable[[PlanItem, int], None]  # (item, units just done)
LOCK_RETRIES = 3
TARGET_SECONDS = 0.1  # the longest a batch should hold its locks (a concurrent writer waits at most that)
START_SIZE = 250
PASSES = 3  # a pass more picks up what other sessions had locked


@dataclass
class ItemOutcome:
    """What the run did for one plan item."""

    item: PlanItem
    done: BatchOutcome = field(default_factory=BatchOutcome)
    batches: int = 0
    passes: int = 1
    longest_batch: float = 0.0
    after: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.item.code, "table": self.item.table, "safety": self.item.safety.value,
                "before": self.item.rows, "changed": self.done.changed, "archived": self.done.archived,
                "skipped": self.done.skipped, "batches": self.batches, "passes": self.passes,
                "longest_batch_ms": round(self.longest_batch * 1000), "after": self.after, "notes": self.done.notes}


@dataclass
class FixOutcome:
    """A finished (or interrupted) fix run."""

    run_id: str
    items: list[ItemOutcome]
    after: Report | None
    status: str
    seconds: float

    @property
    def changed(self) -> int:
        return sum(i.done.changed for i in self.items)

    @property
    def archived(self) -> int:
        return sum(i.done.archived for i in self.items)

    def summary(self) -> dict[str, Any]:
        return {"changed": self.changed, "archived": self.archived, "seconds": round(self.seconds, 3),
                "rules": [i.to_json() for i in self.items]}


def _tables_touched(plan: FixPlan) -> dict[str, set[str]]:
    """Gives each table the run may write and the privileges that takes."""
    from .repairs.calendar import MergeRepair, RecomputeRepair
    from .repairs.rows import RowRepair

    ctx = RepairContext(plan.schema, plan.options)
    need: dict[str, set[str]] = {}
    for item in plan.to_apply:
        repair = REPAIRS[item.code]
        privileges = {"SELECT", "UPDATE"}
        if isinstance(repair, MergeRepair) or (isinstance(repair, RowRepair) and not repair.assignments):
            privileges.add("DELETE")
            for con in dependents(ctx, item.table):
                need.setdefault(con.table, set()).update({"SELECT", "UPDATE", "DELETE"})
        if isinstance(repair, RecomputeRepair):
            privileges.add("INSERT")
            need.setdefault("transactions", set()).add("SELECT")
        need.setdefault(item.table, set()).update(privileges)
    return need


def preflight(cur: psycopg.Cursor[Any], plan: FixPlan) -> None:
    """Raises one clear error when the role may not do what the plan needs (before anything changes)."""
    store.refuse_read_only(cur, "fix --apply")
    missing = []
    for table, privileges in sorted(_tables_touched(plan).items()):
        lacking = [p for p in sorted(privileges) if not store.table_privilege(cur, table, p)]
        if lacking:
            missing.append(f"{', '.join(lacking)} on {table}")
    if _computes_in_temp(plan):
        cur.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')")
        row = cur.fetchone()
        if not (row and row[0]):
            missing.append("TEMPORARY on the database (a batch computes what it writes in a temporary table)")
    missing += store.missing_privileges(cur, store.FIX_NEEDS)
    store.refuse_lacking(cur, "fix --apply", missing)


def _computes_in_temp(plan: FixPlan) -> bool:
    """Tells whether a repair of the plan computes in a temporary table (the calendar's, and a row repair that
    sets columns: repairs/base.py, CHOOSING)."""
    from .repairs.rows import RowRepair

    repairs = [REPAIRS[item.code] for item in plan.to_apply]
    return any(not isinstance(repair, RowRepair) or bool(repair.assignments) for repair in repairs)


def _units(reader: psycopg.Connection[Any], query: str, size: int) -> Generator[list[tuple[Any, ...]], None, None]:
    """Streams the candidates of one rule from a consistent read-only snapshot, `size` at a time.

    Under the catalog's search_path alone, as the check's statements: a function or operator of public that
    matches an argument's type better than the built-in (public.lower(varchar), public.=(varchar, varchar))
    cannot decide which rows are candidates. (The batches choose and compute under it too, and write under
    public: repairs/base.py, CHOOSING and WRITING.)
    """
    with reader.transaction():
        with reader.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            pin_settings(cur, local=True)
            cur.execute("SELECT set_config('search_path', %s, true)", (CATALOG_SEARCH_PATH,))
        with reader.cursor(name="mita_fix_candidates") as stream:
            stream.execute(query)
            while rows := stream.fetchmany(size):
                yield rows


def _batch(writer: psycopg.Connection[Any], ctx: RepairContext, item: PlanItem, units: list[tuple[Any, ...]],
           request: FixRequest) -> BatchOutcome:
    """Runs one batch as one transaction; retries a batch that could not get its locks."""
    repair = REPAIRS[item.code]
    for attempt in range(LOCK_RETRIES):
        try:
            with transaction(writer, lock_timeout_ms=request.lock_timeout_ms,
                             statement_timeout_ms=request.statement_timeout_ms) as cur:
                return repair.apply(cur, ctx, item.rule, units)
        except errors.LockNotAvailable:
            time.sleep(0.2 * (attempt + 1))
    return BatchOutcome(skipped=len(units), notes=["some rows stayed locked by other sessions: re-run fix"])


def _item(reader: psycopg.Connection[Any], writer: psycopg.Connection[Any], ctx: RepairContext, item: PlanItem,
          request: FixRequest, progress: Progress | None) -> ItemOutcome:
    """Repairs one plan item, batch by batch, in up to PASSES passes.

    A batch holds its row locks until it commits, and a writer of the same rows waits that long. So the
    size adapts: it starts small, doubles while batches finish well inside TARGET_SECONDS, and shrinks
    when one takes longer; --batch-size is the ceiling. Rows another session had locked (SKIP LOCKED) are
    left by their batch; a new pass over what is still violating picks them up.
    """
    out = ItemOutcome(item)
    query = REPAIRS[item.code].candidates_sql(ctx, item.rule)
    size = min(request.batch_size, START_SIZE)
    for n in range(1, PASSES + 1):
        out.passes, skipped_before = n, out.done.skipped
        stream = _units(reader, query, request.batch_size)
        try:
            for chunk in stream:
                while chunk:
                    units, chunk = chunk[:size], chunk[size:]
                    started = time.perf_counter()
                    out.done.add(_batch(writer, ctx, item, units, request))
                    took = time.perf_counter() - started
                    out.batches += 1
                    out.longest_batch = max(out.longest_batch, took)
                    if took > TARGET_SECONDS:
                        size = max(1, int(size * TARGET_SECONDS / took * 0.8))
                    elif took < TARGET_SECONDS / 3:
                        size = min(request.batch_size, size * 2)
                    if progress:
                        progress(item, len(units))
        except BaseException:
            # Close the snapshot now: on a lost connection its cursor cannot close, and that must not bury the
            # error in an "Exception ignored" block when the generator is collected later.
            with contextlib.suppress(psycopg.Error):
                stream.close()
            raise
        if out.done.skipped == skipped_before:
            break
        if n < PASSES:
            out.done.skipped = skipped_before  # what this pass skipped, the next one takes up again
    return out


def apply_fix(db: Database, plan: FixPlan, request: FixRequest, progress: Progress | None = None) -> FixOutcome:
    """Executes the plan's repairs with archive; records the run; gives what was done and the check after."""
    started = time.perf_counter()
    with connect(db) as writer, connect(db) as reader:
        with transaction(writer, read_only=True) as cur:
            preflight(cur, plan)
        store.ensure(writer)
        run_id = store.start_run(writer, "fix", request.options(), __version__)
        ctx = RepairContext(plan.schema, plan.options, run_id)
        items: list[ItemOutcome] = []
        status = "failed"
        try:
            for item in plan.to_apply:
                items.append(_item(reader, writer, ctx, item, request, progress))
            status = "completed"
        finally:
            if writer.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                writer.rollback()
            outcome = FixOutcome(str(run_id), items, None, status, time.perf_counter() - started)
            store.finish_run(writer, run_id, status, outcome.summary())
    after = run_check(db, request.check_request(select=sorted({i.item.code for i in items}))) if items else None
    if after is not None:
        counts = {(r.code, r.table): r.count for r in after.results}
        for i in items:
            i.after = counts.get((i.item.code, i.item.table))
        with connect(db) as writer:
            store.finish_run(writer, run_id, status, outcome.summary(), after.to_json())
    outcome.after = after
    outcome.seconds = time.perf_counter() - started
    return outcome
