"""Section 10: soft-deleted rows (counted per table) and live rows that point at soft-deleted ones."""

from __future__ import annotations

from dataclasses import replace

from ...findings import FixSafety, Severity
from .base import Family, Join, RowRule, Rule, per_table_script
from .context import Schema

SDL001 = RowRule(
    code="SDL001", name="soft-deleted-rows", section=10, severity=Severity.INFO,
    finds="rows marked deleted (deleted_at set), per table that has soft deletion.",
    why="Not a defect: every aggregate must exclude them, and their number tells how much a purge would free.",
    example="transactions: 3,112 soft-deleted rows",
    repair="None: informational.", repair_safety=FixSafety.NONE,
    table=None, column="deleted_at", message="soft-deleted rows", hint="informational",
    predicate="t.deleted_at IS NOT NULL",
    script=lambda ctx, rule: per_table_script(rule.code, "t.deleted_at IS NOT NULL", "deleted_at", "true"),
)

SDL002 = RowRule(
    code="SDL002", name="live-transaction-of-deleted-goal", section=10, severity=Severity.LOW,
    finds="live transactions linked to a soft-deleted goal.",
    why="Savings shown under a goal the user deleted; the goal's totals and the transaction list disagree.",
    example="transactions.goal_id → a goal with deleted_at set",
    repair="None: unlink or restore the goal after asking the user.", repair_safety=FixSafety.NONE,
    table="transactions", column="goal_id", requires=("goals.deleted_at",), live_only=True,
    message="linked to a soft-deleted goal", hint="unlink the goal (goal_id = NULL) or restore the goal",
    predicate="sdl002_g.deleted_at IS NOT NULL", joins=(Join("sdl002_g", "goals", "sdl002_g.id = t.goal_id"),),
)

RULES: tuple[Rule, ...] = (SDL001, SDL002)


def expand(schema: Schema) -> tuple[Rule, ...]:
    """Gives SDL001 once per table with a deleted_at column."""
    # A partition's or inheritance child's rows are read with its parent's: each row is counted once.
    tables = sorted(t for t, cols in schema.columns.items()
                    if "deleted_at" in cols and not schema.read_with_parent(t, "deleted_at"))
    return tuple(replace(SDL001, table=t) for t in tables)


FAMILY = Family("softdelete", RULES, expand=expand)
