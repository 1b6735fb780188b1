"""The catalogue as documentation: `rules`, `rules CODE`, and the generated rule reference (docs/rules.md)."""

from __future__ import annotations

import textwrap
from typing import Any

from ...findings import SECTIONS
from ..rule_registry import ALL_RULES
from .base import QueryRule, RowRule, Rule, SchemaRule


def _kind(rule: Rule) -> str:
    if isinstance(rule, RowRule):
        return "row predicate" if rule.table else "row predicate, per table"
    if isinstance(rule, SchemaRule):
        return "schema (catalog query)"
    if isinstance(rule, QueryRule):
        return "query, per table" if rule.per_table or rule.table is None else "query"
    return "rule"


def rule_json(rule: Rule) -> dict[str, Any]:
    """Gives one rule's documentation as JSON."""
    return {
        "code": rule.code, "name": rule.name, "section": rule.section, "section_title": SECTIONS[rule.section],
        "severity": rule.severity.value, "table": rule.table or "(every table it applies to)",
        "column": rule.column, "finds": rule.finds, "why": rule.why, "example": rule.example,
        "repair": rule.repair, "repair_safety": rule.repair_safety.value, "kind": _kind(rule),
        "live_only": rule.live_only, "physical": rule.physical,
    }


def listing() -> str:
    """Gives the catalogue as a table: code, severity, safety, table, what it finds."""
    lines = [f"{'CODE':<7} {'SEVERITY':<9} {'REPAIR':<7} {'TABLE':<18} FINDS"]
    for rule in ALL_RULES:
        finds = textwrap.shorten(rule.finds, 70, placeholder="…")
        table = rule.table or "(per table)"
        lines.append(f"{rule.code:<7} {rule.severity.value:<9} {rule.repair_safety.value:<7} {table:<18} {finds}")
    lines.append(f"{len(ALL_RULES)} rules. `mita-integrity rules CODE` explains one.")
    return "\n".join(lines)


def explain(rule: Rule) -> str:
    """Gives everything about one rule, for `mita-integrity rules CODE`."""
    def block(title: str, text: str) -> list[str]:
        return [title, *textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="  "), ""]

    where = f"{rule.table}.{rule.column}" if rule.table and rule.column else (rule.table or "every table it applies to")
    lines = [f"{rule.code} {rule.name} — {rule.severity.value}, section {rule.section} "
             f"({SECTIONS[rule.section]}), on {where}", ""]
    lines += block("What it finds", rule.finds + (" Soft-deleted rows are ignored." if rule.live_only else ""))
    lines += block("Why it matters", rule.why)
    lines += block("Example", rule.example)
    lines += block(f"Repair ({rule.repair_safety.value})", rule.repair)
    if isinstance(rule, RowRule) and rule.table:
        lines += ["SQL", "  " + rule.standalone_sql("t.deleted_at IS NULL" if rule.live_only else ""), ""]
    return "\n".join(lines).rstrip() + "\n"
