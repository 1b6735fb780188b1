"""Rule by rule, what the changes mean: keep the base's result, re-read part of it, or run in full (and why).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from ...findings import Status
from ...runs.check_bases import Base
from ..rule_registry import BY_CODE
from ..rules.base import QueryRule, RowRule, Rule, SchemaRule
from ..rules.context import CheckContext
from .changes import Change

_TABLE_REF = re.compile(r'\bpublic\.(?:"((?:[^"]|"")+)"|(\w+))')


_CLOCK = re.compile(r"\b(now|current_date|current_timestamp|localtimestamp|localtime|clock_timestamp|"
                    r"statement_timestamp|transaction_timestamp|timeofday|random)\b", re.IGNORECASE)


# What each grouping rule of the catalogue reads (their SQL is their family's own): checked by a test
# against the tables their statements name.
QUERY_READS: dict[str, tuple[str, ...]] = {
    "DUP001": ("users",), "DUP002": ("daily_plan",), "DUP003": ("transactions",),
    "BUD001": ("daily_plan", "transactions", "users"), "BUD002": ("daily_plan", "transactions", "users"),
    "USR003": ("users", "transactions"),
}


DATE_BOUND = frozenset({"BUD001", "BUD002"})  # their window starts at the current UTC date


# Row rules that read the clock, but whose violations can only end as it moves (spent_at > now() + 1 day): an
# unchanged row that does not violate now did not at the base either, so re-reading the base's violators and
# the changed rows is exact. A rule is listed here only when that holds.
SHRINKING_WITH_TIME = frozenset({"TIM003"})


def reads(rule: Rule) -> tuple[str, ...] | None:
    """Gives the tables a catalogue rule reads, or None when that is not known (a team rule, a schema rule)."""
    if rule.code not in BY_CODE or isinstance(rule, SchemaRule):
        return None
    if isinstance(rule, RowRule):
        return tuple(dict.fromkeys([str(rule.table), *(n for _, n in _named(rule))]))
    if isinstance(rule, QueryRule) and rule.code in QUERY_READS and rule.table:
        own = (rule.table,) if rule.table else ()
        return tuple(dict.fromkeys([*own, *QUERY_READS[rule.code]]))
    return None


def _named(rule: RowRule) -> list[tuple[str, str]]:
    text = " ".join([rule.predicate, *(j.source for j in rule.joins)])
    return [("", quoted.replace('""', '"') or plain) for quoted, plain in _TABLE_REF.findall(text)]


SPREAD_PARENTS = {"REF011": ("users",)}  # what a per-table rule of the catalogue reads besides each table


def _spread(ctx: CheckContext, rule: Rule, with_parents: bool = False) -> tuple[str, ...] | None:
    """Gives the tables a per-table rule of the catalogue reads one by one (REF011: every text user_id table of
    the live schema), with what it reads besides them when asked; None for any other rule."""
    if rule.code not in SPREAD_PARENTS or rule.table is not None or BY_CODE.get(rule.code) is not rule:
        return None
    from ..rules.references import user_id_tables

    tables = tuple(user_id_tables(ctx.schema, uuid=False))
    return (*tables, *SPREAD_PARENTS[rule.code]) if with_parents else tables


def _spread_verdict(rule: Rule, tables: tuple[str, ...], base: Base, changes: dict[str, Change | str]) -> str:
    """Gives 'reuse' when the base evaluated the same tables and none of them, nor what they join, changed."""
    before = {t for (code, t) in base.kept.results if code == rule.code}
    if before != set(tables):
        return "the tables it reads are not the base run's"
    if any(base.kept.results[(rule.code, t)][0].status not in (Status.PASS, Status.FAIL) for t in tables):
        return "no evaluated result in the base run"
    for table in (*tables, *SPREAD_PARENTS[rule.code]):
        state = changes.get(table, f"{table} was not read")
        if isinstance(state, str):
            return state
        if not state.none:
            return f"a rule over every table of a kind: {_said(table, state)}"
    return "reuse"


def _verdict(rule: Rule, key: tuple[str, str], base: Base, changes: dict[str, Change | str], today: date,
             log: str | None = None, by_zone: bool = False) -> str:
    """Gives 'reuse', 'restrict', 'groups', 'log', or the reason the rule runs in full. `log`: why the change
    log cannot serve this base (None: it can)."""
    tables = reads(rule)
    if tables is None:
        if isinstance(rule, SchemaRule):
            return "a schema rule: always in full"
        if rule.code in BY_CODE:
            return "a rule over every table of a kind: always in full"
        return "a team rule: the tables it reads are not known"
    prior = base.kept.results.get(key)
    if prior is None or prior[0].status not in (Status.PASS, Status.FAIL):
        return "no evaluated result in the base run"
    states = [changes.get(t, f"{t} was not read") for t in tables]
    unknown = next((s for s in states if isinstance(s, str)), None)
    if unknown is not None:
        return unknown
    clock = isinstance(rule, RowRule) and bool(_CLOCK.search(rule.predicate))
    if clock and rule.code in SHRINKING_WITH_TIME and rule.predicate == BY_CODE[rule.code].predicate:  # type: ignore[attr-defined]
        clock, shrinking = False, True
    else:
        shrinking = False
    date_bound = rule.code in DATE_BOUND
    if all(isinstance(s, Change) and s.none for s in states) and not clock and not shrinking:
        if date_bound and base.kept.utc_date != today:
            return "its window starts at today's date, and the base ran on another day"
        return "reuse"
    touched = ", ".join(_said(t, s) for t, s in zip(tables, states, strict=True) if isinstance(s, Change)
                        and not s.none)
    if rule.code in GROUPED and BY_CODE.get(rule.code) is rule:
        if prior[1] is None:
            return "the base run kept no members of its groups"
        return "groups"
    if rule.code in OLD_KEYS and BY_CODE.get(rule.code) is rule:
        if log is not None:
            return f"a grouping rule: {touched}; the change log cannot say which groups they left ({log})"
        if prior[1] is None:
            return "the base run kept no keys for it"
        if date_bound and base.kept.utc_date != today:
            return "its window starts at today's date, and the base ran on another day"
        users = changes.get("users")
        if by_zone and rule.code != "USR003" and not (isinstance(users, Change) and users.none):
            return "--day-boundary user-timezone: users changed, and a zone moves transactions between days"
        return "log"
    if not isinstance(rule, RowRule):
        return f"a grouping rule: {touched}"
    if clock:
        return "its predicate reads the clock"
    if prior[1] is None:
        return "the base run kept no keys for it"
    own = states[0]
    assert isinstance(own, Change)
    if len(prior[1]) > max(1000, own.rows // 20):  # looking each one up by its key would cost more than a scan
        return f"{len(prior[1]):,} violating rows at the base: a full read is cheaper than looking them up"
    if str(rule.table) in [n for _, n in _named(rule)]:
        return f"it reads other rows of {rule.table}"
    for table, state in zip(tables[1:], states[1:], strict=True):
        assert isinstance(state, Change)
        if state.none:
            continue
        if rule.fk is not None and table == rule.fk[1] and state.lost == 0:
            continue  # a parent table that only gained rows cannot orphan an unchanged child
        return f"{_said(table, state)} (a joined table)"
    return "restrict"


def _said(table: str, change: Change) -> str:
    return f"{table}: {change.changed} rows written, {change.lost} base rows updated or deleted since the base"


def _joined_unchanged(rules: Sequence[RowRule], changes: dict[str, Change | str]) -> bool:
    """Tells whether no table the rules join (besides their own) changed at all since the base."""
    return all(isinstance(c := changes.get(t), Change) and c.none for r in rules for t in (reads(r) or ())[1:])


GROUPED: dict[str, str] = {"DUP001": "users", "DUP002": "daily_plan", "DUP003": "transactions"}


OLD_KEYS = frozenset({"BUD001", "BUD002", "USR003"})  # the rules that need the change log (runs/change_log.py)
