"""The catalogue: every family in report order, lookup by code, and --select/--ignore."""

from __future__ import annotations

from collections.abc import Iterable

from ..database.errors import UsageError
from .rules import (
    amounts,
    duplicates,
    goals,
    nulls,
    physical,
    plan_dates,
    references,
    schema,
    softdelete,
    timestamps,
    transaction_keys,
    users,
)
from .rules.base import Family, Rule

FAMILIES: tuple[Family, ...] = (
    nulls.FAMILY, references.FAMILY, duplicates.FAMILY, timestamps.FAMILY, transaction_keys.FAMILY, goals.FAMILY,
    amounts.FAMILY, softdelete.FAMILY, schema.FAMILY, users.FAMILY, plan_dates.FAMILY, physical.FAMILY,
)


def _order(rule: Rule) -> tuple[int, str]:
    return rule.section, rule.code


ALL_RULES: tuple[Rule, ...] = tuple(sorted((r for f in FAMILIES for r in f.rules), key=_order))
BY_CODE: dict[str, Rule] = {r.code: r for r in ALL_RULES}
FAMILY_OF: dict[str, Family] = {r.code: f for f in FAMILIES for r in f.rules}


def rule(code: str) -> Rule:
    """Gives the rule with this code (case-insensitive) or its name; raises UsageError when unknown."""
    token = code.strip()
    found = BY_CODE.get(token.upper()) or next((r for r in ALL_RULES if r.name == token.lower()), None)
    if found is None:
        raise UsageError(f"unknown rule '{code}'", "`mita-integrity rules` lists every code")
    return found


def _match(token: str) -> list[Rule]:
    upper = token.upper()
    if upper in BY_CODE:
        return [BY_CODE[upper]]
    named = [r for r in ALL_RULES if r.name == token.lower()]
    if named:
        return named
    return [r for r in ALL_RULES if r.code.startswith(upper)] if upper.isalpha() else []


def _tokens(values: Iterable[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def select(select: Iterable[str] = (), ignore: Iterable[str] = ()) -> tuple[Rule, ...]:
    """Gives the rules chosen by --select and --ignore (codes, prefixes such as REF, or names)."""
    chosen: list[Rule] = []
    for token in _tokens(select) or ["*"]:
        matched = list(ALL_RULES) if token == "*" else _match(token)
        if not matched:
            raise UsageError(f"--select {token}: no rule has that code, prefix or name",
                             "`mita-integrity rules` lists them")
        chosen.extend(r for r in matched if r not in chosen)
    for token in _tokens(ignore):
        matched = _match(token)
        if not matched:
            raise UsageError(f"--ignore {token}: no rule has that code, prefix or name",
                             "`mita-integrity rules` lists them")
        chosen = [r for r in chosen if r not in matched]
    return tuple(sorted(chosen, key=_order))
