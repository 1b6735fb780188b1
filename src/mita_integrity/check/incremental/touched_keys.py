"""check --incremental's re-read of the (user, day, category) keys a change touched: BUD001, BUD002, DUP002 and
DUP003 at once, each key read whole through the indexes, in two halves over the check's connections.

Every one of those rules is a verdict per key of transaction_keys.shared_sql (DUP003's key refines it: one
user's second lies in one day and one category), so re-reading a set of whole keys gives each rule's verdict
for exactly those keys. Which keys must be read, rule by rule (anything outside them keeps the base's verdict,
and the base's violators are always among them):
- BUD001 and BUD002 (only with a proven change log, see incremental._log_proof): the keys rows left (the log's
  old keys), the keys of the rows written since the base in either table, and the base's violating keys;
- DUP002: the keys of the plan rows written since, and the keys of the base's duplicated groups (their members'
  current rows, by primary key); losing rows never makes a duplicate (incremental._groups says why);
- DUP003: likewise over the transactions.
With --day-boundary user-timezone a key's day depends on the user's zone (users unchanged, see _verdict): whole
(user, category) sets are read instead, which is coarser and as exact.

Why this shape: at 1 % change of scale 1 the affected keys are about 100,000, spread over most users. One index
probe per key ((user_id, spent_at) and (user_id, date, category)) reads their rows in about 0.4 s a table, where
finding their row ids first and then reading those by TID (the earlier form) cost 5 s and more; the statement
groups only those rows. A pass over a whole table would cost what the table holds, not what changed.

Imports: the check's rules and context only; runner.py calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any

from ...runs.check_bases import Base
from ..rules import transaction_keys
from ..rules.base import rel
from ..rules.context import CheckContext, Outcome
from ..rules.dayboundary import plan_day_sql
from .written_since import changed_sql

KEYED = frozenset({"BUD001", "BUD002", "DUP002", "DUP003"})
LOGGED_CODES = frozenset({"BUD001", "BUD002"})  # need the change log's old keys
TABLE = {"BUD001": "daily_plan", "BUD002": "transactions", "DUP002": "daily_plan", "DUP003": "transactions"}

Key = tuple[str | None, date | None, str | None]  # (user_id as text, UTC day or None: every day, category)


def affected(ctx: CheckContext, codes: frozenset[str], base: Base, window: int, log: str,
             written: Mapping[str, Sequence[tuple[Any, ...]] | None]) -> list[Key]:
    """Gives the keys to re-read for the chosen rules (see the module's docstring), sorted by user (NULL last).

    `log`: the change log's relation (read only when BUD001 or BUD002 is chosen). `written`: per table
    (transactions, daily_plan), the (user_id, UTC day, category) keys of its rows written since the base, as
    the changes scan collected them; None: not collected, read here.
    """
    dated = ctx.options.day_boundary != "user-timezone"
    tx_day = "(t.spent_at AT TIME ZONE 'UTC')::date" if dated else "NULL::date"
    plan_day = plan_day_sql("t.date") if dated else "NULL::date"
    log_day = "(at AT TIME ZONE 'UTC')::date" if dated else "NULL::date"
    bud = bool(codes & LOGGED_CODES)
    parts: list[str] = []
    params: dict[str, Any] = {"x": str(base.kept.xmin)}
    if bud:
        parts.append(f"SELECT user_id::text, {log_day}, category FROM {log} WHERE txid >= %(x)s::text::xid8")
    keys: set[Key] = set()
    for table, day, needed in (("transactions", tx_day, bud or "DUP003" in codes),
                               ("daily_plan", plan_day, bud or "DUP002" in codes)):
        if not needed:
            continue
        rows = written.get(table)
        if rows is None:
            parts.append(f"SELECT t.user_id::text, {day}, t.category::text FROM {rel(table)} t "
                         f"WHERE {changed_sql(window)}")
        else:
            keys.update((user, day_ if dated else None, category) for user, day_, category in rows)
    for code, table, day in (("DUP002", "daily_plan", plan_day), ("DUP003", "transactions", tx_day)):
        members = base.kept.results[(code, table)][1] if code in codes else None
        if members:  # the members are ids (the statements name rows by t.id), whatever the primary key is
            typ = ctx.schema.columns[table]["id"][0]
            params[code] = list(members)
            parts.append(f"SELECT t.user_id::text, {day}, t.category::text FROM {rel(table)} t "
                         f"WHERE t.id IN (SELECT CAST(k AS {typ}) FROM unnest(%({code})s::text[]) AS u(k))")
    # The base's violating keys of BUD001 and BUD002 (JSON triples), read as the server reads a day: one Python
    # cannot hold (infinity, a day before Christ) fails this read as a changed row's does, and its rules run in
    # full with the reason (no probe of a range finds the rows of an infinite day).
    violating = [k for code in sorted(codes & LOGGED_CODES) for k in base.kept.results[(code, TABLE[code])][1] or ()]
    if violating:
        params["violating"] = violating
        parts.append(f"SELECT k::json ->> 0, {'(k::json ->> 1)::date' if dated else 'NULL::date'}, k::json ->> 2 "
                     "FROM unnest(%(violating)s::text[]) AS u(k)")
    if parts:
        ctx.cur.execute(" UNION ".join(parts), params)
        keys.update(ctx.cur.fetchall())
    # In user order, NULL users last (the runs of `halves` are whole users; a key's probes in the order of the
    # tables' rows); a sort by the user alone, since a day or category may be NULL.
    return sorted((k for k in keys if k[0] is not None), key=itemgetter(0)) + [k for k in keys if k[0] is None]


def halves(keys: list[Key], parts: int) -> list[list[Key]]:
    """Gives the keys in `parts` runs of whole users, in key order (NULL users in the last): each run is read on
    its own connection, and the samples taken in key order are the runs' in turn."""
    if parts < 2 or len(keys) < 2:
        return [keys] if keys else []
    pivot = keys[len(keys) // 2][0]
    if pivot is None:
        return [keys]
    first = [k for k in keys if k[0] is not None and k[0] < pivot]
    rest = [k for k in keys if not (k[0] is not None and k[0] < pivot)]
    return [run for run in (first, rest) if run]


def _sources(ctx: CheckContext, keys: Sequence[Key], params: dict[str, Any]) -> Callable[[str], list[str]]:
    """Gives shared_sql's `sources`: per table, the chosen keys (as parameters) joined to the table so that each
    key is one probe of its index: a range of the (user, time) index in UTC, the user's rows otherwise. Apart,
    each in a join of its own: a NULL user_id, which no equality finds, and (in UTC) a NULL day, the key of
    the rows whose time is NULL (plan rows without a date: DUP002 groups them as one day), which no range
    holds. Whether a key has a day is the check's option, not any one key's: keys with and without a day
    never share a row, so each row is read once."""
    dated = ctx.options.day_boundary != "user-timezone"
    runs: dict[tuple[bool, bool], list[Key]] = {}
    for k in keys:
        runs.setdefault((k[0] is None, dated and k[1] is None), []).append(k)
    chosen = sorted(runs.items())
    for i, (_, run) in enumerate(chosen):
        params.update({f"k{i}u": [k[0] for k in run], f"k{i}d": [k[1] for k in run], f"k{i}c": [k[2] for k in run]})

    def sources(table: str) -> list[str]:
        column = "t.date" if table == "daily_plan" else "t.spent_at"
        typ = ctx.schema.columns[table]["user_id"][0]
        out = []
        for i, ((null_user, null_day), _) in enumerate(chosen):
            user = "t.user_id IS NULL" if null_user else f"t.user_id = CAST(k.u AS {typ})"
            day = ("" if not dated else f" AND {column} IS NULL" if null_day else
                   f" AND {column} >= (k.d::timestamp AT TIME ZONE 'UTC') "
                   f"AND {column} < ((k.d + 1)::timestamp AT TIME ZONE 'UTC')")
            out.append(f"unnest(%(k{i}u)s::text[], %(k{i}d)s::date[], %(k{i}c)s::text[]) AS k(u, d, c) "
                       f"JOIN {rel(table)} t ON {user}{day} AND t.category IS NOT DISTINCT FROM k.c")
        return out

    return sources


@dataclass
class Found:
    """What one run of keys gave: per rule its outcome, and the keys a recorded run keeps (violating keys of
    BUD001/BUD002, members of DUP002's and DUP003's duplicated groups)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)


def evaluate(ctx: CheckContext, codes: frozenset[str], keys: Sequence[Key]) -> Found:
    """Gives the chosen rules' verdicts over exactly these keys, each read whole (one statement)."""
    params: dict[str, Any] = {"n": ctx.options.sample}
    statement = transaction_keys.shared_sql(ctx, codes, sources=_sources(ctx, keys, params))
    # The keys drive the reads: a probe of an index per key (the planner, which sees the arrays' length, would
    # otherwise pass over whole tables); no hash grouping, no parallel workers, as the full statement.
    with transaction_keys.streamed(ctx.cur, (("enable_mergejoin", "off"), ("enable_seqscan", "off"))):
        ctx.cur.execute(statement, params)
        row = ctx.cur.fetchone()
    assert row is not None
    out = Found(outcomes=transaction_keys.outcomes(row, codes))
    for code, found in (("BUD001", row[10]), ("BUD002", row[11]), ("DUP002", row[12]), ("DUP003", row[13])):
        if code in codes:
            out.kept[code] = list(found or ())
    return out


def merged(runs: Sequence[Found], codes: frozenset[str], sample: int) -> Found:
    """Gives one Found of the runs' (in key order): counts added; samples cut to --sample, BUD002's and DUP003's
    the smallest ids (as the engine merges a split pass), the others the runs' in turn (key order)."""
    out = Found()
    for code in sorted(codes):
        parts = [r.outcomes[code] for r in runs]
        table = TABLE[code]
        if not parts:
            out.outcomes[code] = Outcome(code, table, 0, 0 if code.startswith("DUP") else None,
                                         column=_COLUMN.get(code))
            out.kept[code] = []
            continue
        ids = [s for p in parts for s in p.sample]
        ids = sorted(ids)[:sample] if code in ("BUD002", "DUP003") else ids[:sample]
        groups = None if all(p.groups is None for p in parts) else sum(p.groups or 0 for p in parts)
        out.outcomes[code] = Outcome(code, table, sum(p.count for p in parts), groups, tuple(ids),
                                     column=parts[0].column)
        out.kept[code] = [k for r in runs for k in r.kept.get(code, ())]
    return out


_COLUMN = {"BUD001": "spent_amount", "BUD002": "amount"}


