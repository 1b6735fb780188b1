"""CHECK constraints on goals, transactions and daily_plan — violators repaired where safe, else left to a person.

goals: saved_amount ≤ target_amount, progress ≤ 100, target_amount > 0; transactions: amount ≥ 0 unless
the category is refund or income; daily_plan: planned_amount ≥ 0. The violators with a safe repair are
repaired first, with archive (GOL001 recomputes progress: run before the CHECKs exist, since its UPDATE would
otherwise trip over another CHECK of the same row); then each CHECK is added NOT VALID (every new write is
checked at once) and VALIDATEd. Where violators remain that only a person may resolve (a negative spend, a
target of 0, an over-saved goal), the constraint stays NOT VALID, the migration completes and prints them with the
commands that resolve them; `mita-integrity migrate validate` validates it later.

Revision ID: 0024_add_check_constraints
Revises: 0023_add_unique_constraint_daily_plan
"""

from __future__ import annotations

from mita_integrity.migrations.frozen import r0024
from mita_integrity.migrations.frozen.cleanup_v1 import clean_up
from mita_integrity.migrations.frozen.kit_v1 import CHECKS_0024, online, refuse_other_definitions, say

revision: str = "0024_add_check_constraints"
down_revision: str | None = "0023_add_unique_constraint_daily_plan"
branch_labels: str | None = None
depends_on: str | None = None

# How each constraint's violators are resolved (its table and expression: frozen/kit_v1.CHECKS_0024).
RESOLVE = {
    "ck_goals_saved_le_target": "mita-integrity fix --apply --unsafe --select GOL003 (caps saved at target)",
    "ck_goals_progress_le_100": "mita-integrity fix --apply --select GOL001",
    "ck_goals_target_positive": "a person sets the goal's real target (GOL005), then mita-integrity migrate validate",
    "ck_transactions_amount_nonnegative": "a person decides each negative spend (AMT003), then mita-integrity "
                                          "migrate validate",
    "ck_daily_plan_planned_nonnegative": "a person sets the planned amount (AMT005), then mita-integrity migrate "
                                         "validate",
}
# name -> (table, expression, how its violators are resolved)
CHECKS = {name: (table, expression, RESOLVE[name]) for name, (table, expression) in CHECKS_0024.items()}


def upgrade() -> None:
    with online() as db:
        say("  0024: CHECK constraints")
        refuse_other_definitions(db, unique=False, checks=tuple(CHECKS))
        # Progress is recomputed before the CHECKs exist: an UPDATE re-checks every constraint of its row, so a
        # goal saved past its target (a person's, GOL003) would fail the NOT VALID saved <= target CHECK and
        # stop the whole upgrade. A row made stale in between is caught by VALIDATE and left to `migrate validate`.
        clean_up(revision, r0024.STEPS)  # GOL001
        for name, (table, expression, _) in CHECKS.items():
            db.add_not_valid(table, name, f"CHECK ({expression})")
        for name, (table, expression, resolve) in CHECKS.items():
            db.validate(table, name, resolve, where=f"NOT ({expression})")
        if db.pending:
            say("    the migration is complete; constraints left NOT VALID check every new write, and wait for a "
                "person to resolve the rows above (mita-integrity verify lists them)")


def downgrade() -> None:
    with online() as db:
        for name, (table, _, _) in CHECKS.items():
            db.drop_constraint(table, name)
