"""Section 6: timestamps that cannot be true."""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import Family, RowFix, RowRule
from .references import ORPHANS

M, H = Severity.MEDIUM, Severity.HIGH

RULES = (
    RowRule(
        code="TIM001", name="transaction-updated-before-created", section=6, severity=M,
        finds="transactions whose created_at is later than updated_at.",
        why="A row cannot change before it exists; such rows come from imports or clock skew and break "
            "'recently changed' queries and sync.",
        example="created_at = 2026-01-10 12:00, updated_at = 2026-01-09 08:00",
        repair="Safe: set updated_at to created_at (archived first; the table's updated_at trigger then stamps "
               "now(), which is just as consistent). A row created in the future needs a person.",
        repair_safety=FixSafety.SAFE,
        table="transactions", column="updated_at", requires=("transactions.created_at",),
        message="updated before it was created", hint="`mita-integrity fix --apply --select TIM001` sets updated_at",
        predicate="t.created_at > t.updated_at",
        # The table's trigger stamps updated_at = now() over what the repair sets: that mends a row created in
        # the past, never one created in the future (clock skew), which is left to a person, not re-archived.
        fix=RowFix(after=ORPHANS, assignments="updated_at = t.created_at", guard="t.created_at <= now()",
                   leaves="rows created in the future"),
    ),
    RowRule(
        code="TIM002", name="goal-updated-before-created", section=6, severity=M,
        finds="goals whose created_at is later than last_updated.",
        why="A goal cannot be updated before it exists; progress history and sorting go wrong.",
        example="created_at = 2026-02-01, last_updated = 2026-01-15",
        repair="Safe: set last_updated to created_at (archived first).", repair_safety=FixSafety.SAFE,
        table="goals", column="last_updated", requires=("goals.created_at",),
        message="last_updated before created_at", hint="`mita-integrity fix --apply --select TIM002` sets last_updated",
        predicate="t.created_at > t.last_updated",
        fix=RowFix(after=ORPHANS, assignments="last_updated = t.created_at"),
    ),
    RowRule(
        code="TIM003", name="future-spending", section=6, severity=M,
        finds="live transactions spent more than one day in the future.",
        why="Future spending inflates today's and tomorrow's budgets; usually a wrong year or time zone.",
        example="spent_at = 2027-01-01 while today is 2026-11-25",
        repair="Unsafe: soft-delete the transaction (a guess; --unsafe).", repair_safety=FixSafety.UNSAFE,
        table="transactions", column="spent_at", live_only=True,
        message="spent more than a day in the future", hint="check the date with the user; fix or soft-delete",
        # The bound once per statement (an InitPlan): timestamptz + interval converts through the time zone, and
        # per row it cost 0.5 s of a 5-million-row pass.
        predicate="t.spent_at > (SELECT now() + interval '1 day')",
        fix=RowFix(after=ORPHANS, assignments="deleted_at = now()"),
    ),
    RowRule(
        code="TIM004", name="goal-completed-before-created", section=6, severity=H,
        finds="goals whose completed_at is earlier than created_at.",
        why="A goal cannot be reached before it was set; streaks and statistics go wrong.",
        example="created_at = 2026-03-01, completed_at = 2026-02-01",
        repair="Safe: set completed_at to created_at (archived first).", repair_safety=FixSafety.SAFE,
        table="goals", column="completed_at", requires=("goals.created_at",),
        message="completed before it was created",
        hint="`mita-integrity fix --apply --select TIM004` sets completed_at",
        predicate="t.completed_at < t.created_at",
        fix=RowFix(after=ORPHANS, assignments="completed_at = t.created_at"),
    ),
    RowRule(
        code="TIM005", name="transaction-deleted-before-created", section=6, severity=M,
        finds="transactions whose deleted_at is earlier than created_at.",
        why="A row cannot be deleted before it exists; retention and undelete logic misbehave.",
        example="created_at = 2026-05-02, deleted_at = 2026-05-01",
        repair="None: which timestamp is wrong needs a person.", repair_safety=FixSafety.NONE,
        table="transactions", column="deleted_at", requires=("transactions.created_at",),
        message="deleted before it was created", hint="look at the row's history before changing either time",
        predicate="t.deleted_at < t.created_at",
    ),
)

FAMILY = Family("timestamps", RULES)
