"""Section 14: calendar rows with a time of day, and plans overspent (information)."""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import CheckSpec, Family, MergeFix, RowRule
from .duplicates import MIDNIGHT_CHECK, MIDNIGHT_DEFINITION
from .references import ORPHANS

NOT_MIDNIGHT = "(t.date AT TIME ZONE 'UTC')::time <> '00:00'"

RULES = (
    RowRule(
        code="CAL001", name="plan-date-with-time", section=14, severity=Severity.MEDIUM,
        finds="daily_plan rows whose date is not midnight UTC.",
        why="The same day written with a time of day escapes the (user, date, category) key: this is how "
            "duplicate calendar entries were born in production.",
        example="date = 2026-01-11 14:30:00+00 beside 2026-01-11 00:00:00+00",
        repair="Safe: normalise to midnight UTC of the same day, merging into an existing row of that day.",
        repair_safety=FixSafety.SAFE, table="daily_plan", column="date",
        message="date carries a time of day", hint="`mita-integrity fix --apply --select CAL001` normalises and merges",
        predicate=NOT_MIDNIGHT, fix=MergeFix(after=ORPHANS, needs=f"bool_or({NOT_MIDNIGHT})"),
        # 0023's check: a date equal to its UTC day's start has time 00:00 in UTC (an infinite date passes the
        # check and has no time: NULL, which the rule does not count either; so does a NULL date).
        guaranteed_by_check=(CheckSpec(MIDNIGHT_CHECK, MIDNIGHT_DEFINITION),),
    ),
    RowRule(
        code="CAL002", name="plan-overspent", section=14, severity=Severity.INFO,
        finds="daily_plan rows whose spent_amount exceeds a positive planned_amount.",
        why="Not a defect: overspending is real life. Counted so that a sudden jump is noticed.",
        example="planned 20.00, spent 31.40",
        repair="None: informational.", repair_safety=FixSafety.NONE,
        table="daily_plan", column="spent_amount", requires=("daily_plan.planned_amount",),
        message="spent more than planned", hint="informational",
        predicate="t.spent_amount > t.planned_amount AND t.planned_amount > 0",
    ),
)

FAMILY = Family("calendar", RULES)
