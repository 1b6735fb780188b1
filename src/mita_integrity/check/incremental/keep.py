"""What a recorded check keeps for the next incremental one: its snapshot, the tables' rows and every violating key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ...findings import Result, Status
from ...runs.check_bases import Kept, TableState
from .. import engine
from ..rule_registry import BY_CODE
from ..rules.base import RowRule, Rule, rel
from ..rules.context import CheckContext
from .changes import Change, State, _young, _young_sql, _young_window
from .groups import _members
from .old_keys import _log_installed, _old_key_members
from .statements import _guarded, _on_connections, _timing
from .verdict import GROUPED, OLD_KEYS


def _keep(ctx: CheckContext, concrete: Sequence[Rule], results: Sequence[Result],
          keys: dict[tuple[str, str], list[str]], changes: dict[str, Change | str],
          states: dict[str, State], fingerprint: str, opts: dict[str, Any],
          snap: str, xmin: int, xmax: int, datoid: int, reset: datetime | None, today: date,
          helpers: Sequence[CheckContext] = ()) -> Kept:
    """Gives what this run keeps: its snapshot, the tables' rows and every violating key of its row rules.

    The keys of a table's failing row rules are read in one scan (the rules' own conditions and joins, as
    the engine counts them). A rule with more violators than an incremental check would look up (see
    _verdict) keeps none: the next check reads it in full anyway. A read that fails keeps nothing for those
    rules (the next check reads them in full), and the check goes on. The reads are shared between the
    snapshot's connections (`helpers`: the same snapshot), the biggest first.
    """
    tables: dict[str, TableState] = {}
    counted: list[_Read] = []  # the tables the changes scans did not count (they decide which keys are kept)
    for table, (oid, node, kind, counters, shape) in states.items():
        if kind != "r":
            continue
        change = changes.get(table)
        if isinstance(change, Change):
            tables[table] = TableState(oid, node, change.rows, counters, shape, change.young)
        else:
            counted.append(_Read(f"keep:rows:{table}", (), (table,), _table_state(table, oid, node, counters, shape,
                                                                                  xmin, xmax, tables)))
    _run(ctx, helpers, counted)
    reads: list[_Read] = []
    by_key = {(r.code, str(r.table or "(schema)")): r for r in concrete}
    kept_results: dict[tuple[str, str], tuple[Result, list[str] | None]] = {}
    wanted: dict[str, list[RowRule]] = {}
    old_keys: list[str] = []
    for res in results:
        rule = by_key.get((res.code, res.table))
        violators: list[str] | None = None
        if (isinstance(rule, RowRule) and res.status in (Status.PASS, Status.FAIL) and rule.table
                and (ctx.schema.keys.get(rule.table) or rule.table in ctx.schema.primary_keys)):
            if res.count == 0:
                violators = []
            elif (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            elif res.count <= len(res.sample):  # the sample (by the same row key, same snapshot) holds them all
                violators = list(res.sample)
            elif rule.table in tables and res.count <= max(1000, tables[rule.table].rows // 20):
                wanted.setdefault(rule.table, []).append(rule)
        elif (res.code in GROUPED and rule is BY_CODE.get(res.code) and res.status in (Status.PASS, Status.FAIL)
              and ctx.schema.keys.get(res.table)):
            if res.count == 0:
                violators = []
            elif (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            else:
                reads.append(_Read(f"keep:{res.code}", (res.code,), (res.table,), _group_members(res, kept_results)))
        elif res.code in OLD_KEYS and rule is BY_CODE.get(res.code) and res.status in (Status.PASS, Status.FAIL):
            if (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            elif res.count == 0:
                violators = []
            else:
                old_keys.append(res.code)
        kept_results[(res.code, res.table)] = (res, violators)
    if old_keys and _log_installed(ctx.cur):
        for codes in (("USR003",), ("BUD001", "BUD002")):  # the users, then the transactions' one statement
            chosen = tuple(c for c in codes if c in old_keys)
            if chosen:
                tables_read = ("users",) if chosen == ("USR003",) else ("transactions", "daily_plan")
                reads.append(_Read("keep:change_log", chosen, tables_read, _logged_keys(chosen, kept_results)))
    for table, members in wanted.items():
        reads.append(_Read(f"keep:{table}", tuple(r.code for r in members), (table,),
                           _row_keys(table, members, kept_results)))
    _run(ctx, helpers, sorted(reads, key=lambda r: -sum(tables[t].rows for t in r.tables if t in tables)))
    return Kept(fingerprint, opts, snap, xmin, xmax, datoid, reset, today, tables, kept_results)


@dataclass(frozen=True)
class _Read:
    """One read of what a recorded run keeps: its name in the report's passes, and what it does on a context."""

    name: str
    codes: tuple[str, ...]
    tables: tuple[str, ...]
    read: Callable[[CheckContext], None]


def _run(ctx: CheckContext, helpers: Sequence[CheckContext], reads: list[_Read]) -> None:
    """Runs the reads on the snapshot's connections (the list is biggest first), with serial plans; each read is
    timed as a pass of the connection that ran it, and the helpers' join ctx's (the rules' were joined already)."""
    def reader(wctx: CheckContext) -> Callable[[_Read], None]:
        def read(one: _Read) -> None:
            started = time.perf_counter()
            one.read(wctx)
            _timing(wctx, one.name, one.codes, one.tables, started)
        return read

    before = [len(c.passes) for c in helpers]
    try:
        _on_connections(ctx, helpers, reads, reader, serial=True)
    finally:
        for c, n in zip(helpers, before, strict=True):
            ctx.passes.extend(c.passes[n:])


def _table_state(table: str, oid: int, node: int, counters: Any, shape: Any, xmin: int, xmax: int,
                 tables: dict[str, TableState]) -> Callable[[CheckContext], None]:
    def read(wctx: CheckContext) -> None:
        row = _guarded(wctx, f"SELECT count(*), {_young_sql(_young_window(wctx.cur, xmin, xmax))} "
                             f"FROM {rel(table)} t", ())
        if row is not None:
            tables[table] = TableState(oid, node, int(row[0][0]), counters, shape, _young(row[0][1]))
    return read


def _group_members(res: Result, kept: dict[tuple[str, str], tuple[Result, list[str] | None]]
                   ) -> Callable[[CheckContext], None]:
    def read(wctx: CheckContext) -> None:
        kept[(res.code, res.table)] = (res, _members(wctx, res.code))
    return read


def _logged_keys(codes: tuple[str, ...], kept: dict[tuple[str, str], tuple[Result, list[str] | None]]
                 ) -> Callable[[CheckContext], None]:
    def read(wctx: CheckContext) -> None:
        for code, found in _old_key_members(wctx, codes).items():
            table = str(BY_CODE[code].table)
            kept[(code, table)] = (kept[(code, table)][0], found)
    return read


def _row_keys(table: str, members: list[RowRule], kept: dict[tuple[str, str], tuple[Result, list[str] | None]]
              ) -> Callable[[CheckContext], None]:
    def read(wctx: CheckContext) -> None:
        conditions = [f"coalesce({engine._condition(wctx, r)}, false)" for r in members]
        rows_read = _guarded(wctx, f"SELECT {wctx.schema.row_key(table)}, {', '.join(conditions)} "
                                   f"FROM {rel(table)} t {' '.join(engine.pass_joins(members))} "
                                   f"WHERE {' OR '.join(conditions)}", members)
        if rows_read is None:
            return
        for i, rule in enumerate(members, start=1):
            res = kept[(rule.code, table)][0]
            kept[(rule.code, table)] = (res, [row[0] for row in rows_read if row[i]])
    return read
