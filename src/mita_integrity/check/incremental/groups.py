"""The duplicate rules (DUP001-DUP003) re-read incrementally: only the groups a change could touch, each whole.
"""

from __future__ import annotations

from typing import Any

from ...runs.check_bases import Base
from ..rule_registry import BY_CODE
from ..rules.base import Rule, rel
from ..rules.context import CheckContext, Outcome
from ..rules.dayboundary import plan_day_sql
from ..rules.duplicates import dup001_grouped_sql, dup001_key_sql, dup002_grouped_sql, dup002_members_sql
from ..rules.spending import dup003_sql
from .statements import _array, _guarded
from .verdict import GROUPED
from .written_since import changed_sql

# Per duplicate rule, the columns of the key its groups are restricted by (DUP003's is its candidate pair
# (user_id, second), which a group's key refines: a group lies in one pair).
GROUP_KEYS = {
    "DUP001": (dup001_key_sql("t"),),
    "DUP002": ("t.user_id", plan_day_sql("t.date"), "t.category"),
    "DUP003": ("t.user_id", "date_trunc('second', t.spent_at)"),
}


def _within(ctx: CheckContext, code: str, keys: list[tuple[Any, ...]], null_user: bool) -> str:
    """Gives SQL true for the rows of the given groups, each whole: the user's rows by the (user_id, time)
    index and a range of the day or second (a NULL user_id, which no index equality finds, apart)."""
    if code == "DUP001":
        return f"{dup001_key_sql('t')} IN (SELECT unnest({_array(ctx, [k[0] for k in keys], 'text')}))"
    table = GROUPED[code]
    typ = ctx.schema.columns[table]["user_id"][0]
    if code == "DUP002":
        days, cats = _array(ctx, [k[1] for k in keys], "date"), _array(ctx, [k[2] for k in keys], "text")
        match = ("t.date >= (a.d::timestamp AT TIME ZONE 'UTC') AND t.date < ((a.d + 1)::timestamp AT TIME ZONE "
                 "'UTC') AND t.category IS NOT DISTINCT FROM a.c")
        if null_user:
            return f"t.user_id IS NULL AND EXISTS (SELECT 1 FROM unnest({days}, {cats}) a(d, c) WHERE {match})"
        users = _array(ctx, [k[0] for k in keys], typ)
        return f"EXISTS (SELECT 1 FROM unnest({users}, {days}, {cats}) a(u, d, c) WHERE t.user_id = a.u AND {match})"
    seconds = _array(ctx, [k[1] for k in keys], "timestamptz")
    row = rel("transactions")
    match = f"{row}.spent_at >= a.s AND {row}.spent_at < a.s + interval '1 second'"
    if null_user:
        return f"{row}.user_id IS NULL AND EXISTS (SELECT 1 FROM unnest({seconds}) a(s) WHERE {match})"
    users = _array(ctx, [k[0] for k in keys], typ)
    return f"EXISTS (SELECT 1 FROM unnest({users}, {seconds}) a(u, s) WHERE {row}.user_id = a.u AND {match})"


def _groups(ctx: CheckContext, rule: Rule, base: Base, window: int) -> tuple[Outcome, list[str]]:
    """Gives a duplicate rule's outcome and the members of its violating groups, re-evaluating whole only the
    groups of (the base's violating groups) UNION (the keys of the rows written since the base).

    Exact, because a group in neither set now has only rows the base saw unchanged (no row written since
    carries its key), and those rows were in it at the base too: if they are two or more now, they were at
    the base, so the group was a base violator and its members (kept by primary key) give its key. A group
    can only have lost rows since (updated away, deleted, soft-deleted), and losing rows never makes a
    duplicate. Rule by rule against the statements:
    - DUP001 groups users with email ~ NOT_BLANK by lower(trimmed(email)): a row's blankness is part of the
      row, so an unchanged row is in or out as at the base; a NULL e-mail gives a NULL key, in no group.
    - DUP002 groups every daily_plan row (no deleted_at filter) by (user_id, UTC day, category), NULLs equal:
      a NULL user_id is restricted in a pass of its own, a NULL category matched IS NOT DISTINCT.
    - DUP003 finds candidate (user_id, second) pairs among all dated rows (soft-deleted too) then groups the
      live rows of those pairs by (user_id, category, amount, second): a group lies in one pair, and the
      restriction keeps pairs whole, so a pair's rows stay adjacent in spent_at order and the candidate
      test (two rows of the pair side by side) is the full statement's. deleted_at is part of the row.
    The keeper (earliest created_at, then id) and each group's ids are the full statement's, groups being
    whole; which groups fill the --sample is the server's order in both cases (the full statement names no
    order either), so the sample is equal whenever the failing groups fit in it.
    """
    table = GROUPED[rule.code]
    prior = base.kept.results[(rule.code, table)][1] or []
    typ = ctx.schema.columns[table]["id"][0]  # the members are ids (duplicates._ids), whatever the primary key is
    columns = ", ".join(GROUP_KEYS[rule.code])
    ctx.cur.execute(f"SELECT DISTINCT {columns} FROM {rel(table)} t WHERE {changed_sql(window)} "
                    f"UNION SELECT {columns} FROM {rel(table)} t "
                    f"WHERE t.id IN (SELECT CAST(k AS {typ}) FROM unnest(%s::text[]) AS u(k))", (prior,))
    affected = ctx.cur.fetchall()
    if rule.code == "DUP001":
        passes = [(r, False) for r in [[k for k in affected if k[0] is not None]] if r]
    else:
        passes = [(r, null) for null in (False, True) if (r := [k for k in affected if (k[0] is None) == null])]
    count = groups = 0
    sample: list[str] = []
    members: list[str] = []
    n = ctx.options.sample
    for keys, null_user in passes:
        within = _within(ctx, rule.code, keys, null_user)
        if rule.code == "DUP001":
            ctx.cur.execute(f"SELECT n, ids FROM ({dup001_grouped_sql(ctx, within)}) d")
            found = [(int(m), list(ids)) for m, ids in ctx.cur.fetchall()]
            cut = [x for _, ids in found for x in ids[1:]]  # as DUP001's statement: every group's ids after the keeper
        elif rule.code == "DUP002":
            ctx.cur.execute(dup002_members_sql(ctx, within))
            found = [(int(m), list(ids)) for m, ids in ctx.cur.fetchall()]
            cut = [x for _, ids in found[:n] for x in ids[1:]]  # as dup002_sql: the first keys' surplus ids
        else:
            ctx.cur.execute(dup003_sql(ctx, within, members=True))
            rows = ctx.cur.fetchall()
            found = [(int(m), list(ids)) for m, _, ids in rows]
            cut = [last for _, last, _ in rows]  # as dup003_sql: each group's greatest id
        count += sum(m - 1 for m, _ in found)
        groups += len(found)
        sample += cut
        members += [x for _, ids in found for x in ids]
    return Outcome(rule.code, table, count, groups, tuple(sample[:n])), members


def _members(ctx: CheckContext, code: str) -> list[str] | None:
    """Gives the members (primary keys) of every violating group of a duplicate rule, read in full (what a
    recorded run keeps when it did not evaluate the rule incrementally), or None when the read failed."""
    if code == "DUP001":
        statement = f"SELECT unnest(d.ids) FROM ({dup001_grouped_sql(ctx)}) d"
    elif code == "DUP002":
        key = ", ".join(GROUP_KEYS[code])
        statement = (f"SELECT t.id::text FROM {rel('daily_plan')} t WHERE ROW({key})::text IN ("
                     f"SELECT ROW(d.user_id, d.day, d.category)::text FROM ({dup002_grouped_sql(ctx)}) d)")
    else:
        statement = f"SELECT unnest(ids) FROM ({dup003_sql(ctx, members=True)}) m"
    rows = _guarded(ctx, statement, [BY_CODE[code]])
    return None if rows is None else [r[0] for r in rows]
