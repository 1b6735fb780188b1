"""What a recorded check keeps for the next incremental one: its snapshot, the tables' rows and every violating key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
from .statements import _guarded, _timing
from .verdict import GROUPED, OLD_KEYS


def _keep(ctx: CheckContext, concrete: Sequence[Rule], results: Sequence[Result],
          keys: dict[tuple[str, str], list[str]], changes: dict[str, Change | str],
          states: dict[str, State], fingerprint: str, opts: dict[str, Any],
          snap: str, xmin: int, xmax: int, datoid: int, reset: datetime | None, today: date) -> Kept:
    """Gives what this run keeps: its snapshot, the tables' rows and every violating key of its row rules.

    The keys of a table's failing row rules are read in one scan (the rules' own conditions and joins, as
    the engine counts them). A rule with more violators than an incremental check would look up (see
    _verdict) keeps none: the next check reads it in full anyway. A read that fails keeps nothing for those
    rules (the next check reads them in full), and the check goes on.
    """
    tables: dict[str, TableState] = {}
    for table, (oid, node, kind, counters, shape) in states.items():
        if kind != "r":
            continue
        change = changes.get(table)
        if isinstance(change, Change):
            rows, young = change.rows, change.young
        else:
            row = _guarded(ctx, f"SELECT count(*), {_young_sql(_young_window(ctx.cur, xmin, xmax))} "
                                f"FROM {rel(table)} t", ())
            if row is None:
                continue
            rows, young = int(row[0][0]), _young(row[0][1])
        tables[table] = TableState(oid, node, rows, counters, shape, young)
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
                started = time.perf_counter()
                violators = _members(ctx, res.code)
                _timing(ctx, f"keep:{res.code}", (res.code,), (res.table,), started)
        elif res.code in OLD_KEYS and rule is BY_CODE.get(res.code) and res.status in (Status.PASS, Status.FAIL):
            if (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            elif res.count == 0:
                violators = []
            else:
                old_keys.append(res.code)
        kept_results[(res.code, res.table)] = (res, violators)
    if old_keys and _log_installed(ctx.cur):
        started = time.perf_counter()
        for code, found in _old_key_members(ctx, old_keys).items():
            table = str(BY_CODE[code].table)
            kept_results[(code, table)] = (kept_results[(code, table)][0], found)
        _timing(ctx, "keep:change_log", tuple(old_keys), ("transactions", "daily_plan", "users"), started)
    for table, members in wanted.items():
        conditions = [f"coalesce({engine._condition(ctx, r)}, false)" for r in members]
        started = time.perf_counter()
        rows_read = _guarded(ctx, f"SELECT {ctx.schema.row_key(table)}, {', '.join(conditions)} FROM {rel(table)} t "
                                  f"{' '.join(engine.pass_joins(members))} WHERE {' OR '.join(conditions)}", members)
        _timing(ctx, f"keep:{table}", tuple(r.code for r in members), (table,), started)
        if rows_read is None:
            continue
        for i, rule in enumerate(members, start=1):
            res = kept_results[(rule.code, table)][0]
            kept_results[(rule.code, table)] = (res, [row[0] for row in rows_read if row[i]])
    return Kept(fingerprint, opts, snap, xmin, xmax, datoid, reset, today, tables, kept_results)
