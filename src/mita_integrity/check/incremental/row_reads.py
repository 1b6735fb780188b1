"""A row rule re-read incrementally: the changed rows (by their tids) and what is needed of the base's violators.
"""

from __future__ import annotations

from typing import Any

from ...runs.check_bases import Base
from .. import engine
from ..rules.base import RowRule, rel
from ..rules.context import CheckContext, planner_settings
from ..rules.quoting import ident
from .changes import Change
from .verdict import _CLOCK
from .written_since import changed_sql


def _restricted(ctx: CheckContext, table: str, rules: list[RowRule], base: Base, window: int,
                change: Change, log_proven: bool = False, joined_unchanged: bool = False) -> dict[str, list[str]]:
    """Gives each row rule's violating keys, reading only the changed rows and what is needed of the base's.

    A row rule is restricted only when the tables it joins are unchanged, or, for an orphan rule, the parent
    only gained rows (see _verdict): an unchanged row can then only lose a violation (a parent that came
    back), never gain one.
    - the changed rows (written since the base) are evaluated: by the tids the changes scan found, or one scan;
    - the base's violators are evaluated again, looked up by their primary key (typed, so the key's index or a
      hash join serves them), unless no joined table changed at all (`joined_unchanged`): an unchanged row then
      keeps the base's verdict (unless its rule reads the clock), and the question is only whether it is still
      there, unchanged. All are when the
      table lost no row since the base (`lost`, exact); all but the keys the change log logged when it proves
      itself complete (see _log_proof) and logs this table (a row updated or deleted since: its new version, if
      any, is among the changed rows).
    Only rows violating some rule come back (one row per changed row was the costliest part at scale 1).
    """
    from ...runs.change_log import LOG, LOGGED

    prior = {r.code: list(base.kept.results[(r.code, table)][1] or ()) for r in rules}
    key = ctx.schema.row_key(table)
    joins = " ".join(engine.pass_joins(rules))
    conditions = [f"coalesce({engine._condition(ctx, r)}, false)" for r in rules]
    pk = ctx.schema.keys.get(table) or ()
    gone: set[str] | None = None
    if not joined_unchanged:
        pass
    elif change.lost == 0:
        gone = set()
    elif log_proven and table in LOGGED and pk == ("id",):  # the log names rows by id (change_log.function_body)
        ctx.cur.execute(f"SELECT DISTINCT pk::text FROM {LOG} WHERE tbl = %s AND txid >= %s::text::xid8",
                        (LOGGED[table][0], str(base.kept.xmin)))
        gone = {r[0] for r in ctx.cur.fetchall()}
    # A rule whose predicate reads the clock (SHRINKING_WITH_TIME) can change its verdict on an unchanged row.
    kept_as_is = {r.code for r in rules if gone is not None and not _CLOCK.search(r.predicate)}
    # The base violators the log names are read again, not dropped: an entry may be older than the base (a
    # writer that committed before it, while an older one was in flight), its row still there, unchanged.
    union = sorted(set().union(*(set(prior[r.code]) & (gone or set()) if r.code in kept_as_is else set(prior[r.code])
                                 for r in rules)))
    if len(pk) == 1:
        typ = ctx.schema.columns[table][pk[0]][0]
        known = f"t.{ident(pk[0])} IN (SELECT CAST(k AS {typ}) FROM unnest(%(keys)s::text[]) AS u(k))"
    else:
        known = f"{key} IN (SELECT unnest(%(keys)s::text[]))"
    hit = " OR ".join(conditions)
    # (statement, planner settings): each branch its own statement, so each gets the plan it needs
    branches: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    if change.changed and change.tids is not None:  # the changed rows, by the tids the changes scan found
        branches.append((f"SELECT {key}, true, {', '.join(conditions)} FROM {rel(table)} t {joins} "
                         f"WHERE t.ctid = ANY(%(tids)s::tid[]) AND ({hit})", _by_tid(change)))
    elif change.changed:
        branches.append((f"SELECT {key}, true, {', '.join(conditions)} FROM {rel(table)} t {joins} "
                         f"WHERE {changed_sql(window)} AND ({hit})", ()))
    if union:  # not the rows of the branch above, when there is one (a young row the base saw is inside the
        # window but no row written since: with no branch above it is read here)
        apart = f" AND NOT {changed_sql(window)}" if branches else ""
        branches.append((f"SELECT {key}, false, {', '.join(conditions)} FROM {rel(table)} t {joins} "
                         f"WHERE {known}{apart} AND ({hit})", ()))
    found: dict[str, list[str]] = {r.code: [] for r in rules}
    rows: list[tuple[Any, ...]] = []
    with engine.rules_search_path(ctx.cur, rules):
        for statement, settings in branches:
            with planner_settings(ctx.cur, settings):
                ctx.cur.execute(statement, {"keys": union, "tids": list(change.tids or ())})
                rows += ctx.cur.fetchall()
    wanted = {code: set(keys) for code, keys in prior.items()}
    for row in rows:
        k, changed = row[0], row[1]
        for rule, violates in zip(rules, row[2:], strict=True):
            if violates and (changed or k in wanted[rule.code]):
                found[rule.code].append(k)
    if gone is not None:  # the base's violators still there, unchanged: their verdict is the base's
        for rule in (r for r in rules if r.code in kept_as_is):
            seen = set(found[rule.code])
            found[rule.code] += [k for k in prior[rule.code] if k not in gone and k not in seen]
    return found


# The changed rows are read by their tids when they are at most this share of the table's rows. The planner,
# which costs each tid as a random page read, would rather scan the whole table (or its user_id index) and test
# every row's ctid against the list: 1.0 s against 0.27 s for 44,549 tids of 5 million transactions.
TID_SHARE = 0.1


_TID_SCAN = (("enable_seqscan", "off"), ("enable_indexscan", "off"), ("enable_bitmapscan", "off"))


def _by_tid(change: Change) -> tuple[tuple[str, str], ...]:
    """Gives the planner settings that make a read of the changed rows by their tids a Tid Scan (the joined
    tables are then read whole and hashed, which costs what they hold), when the tids are few enough."""
    return _TID_SCAN if len(change.tids or ()) <= TID_SHARE * max(change.rows, 1) else ()
