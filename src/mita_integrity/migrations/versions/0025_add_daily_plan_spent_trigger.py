"""daily_plan.spent_amount kept by a trigger on transactions; spent_amount backfilled and reconciled.

`update_daily_plan_spent()` (migrations/sql/0025_daily_plan_spent_trigger.sql) moves each row's amount
between plan rows by additive deltas on INSERT, UPDATE and DELETE — soft delete and undelete, and a row
that moves to another user, day or category included — upserting a missing plan row, keys locked in a
fixed order, the day of a transaction as DESIGN defines it (the UTC day of spent_at). It needs 0023's
unique key. After the trigger is in place, every (user, day, category) of the history is reconciled with
BUD001's safe repair (archived), so BUD001 is 0 and stays 0.

Revision ID: 0025_add_daily_plan_spent_trigger
Revises: 0024_add_check_constraints
"""

from __future__ import annotations

from mita_integrity.migrations.frozen import r0025
from mita_integrity.migrations.frozen.cleanup_v1 import clean_up
from mita_integrity.migrations.frozen.kit_v1 import online, refuse_other_definitions, say, sql_file
from mita_integrity.migrations.frozen.online_v1 import MigrationRefused, Online

revision: str = "0025_add_daily_plan_spent_trigger"
down_revision: str | None = "0024_add_check_constraints"
branch_labels: str | None = None
depends_on: str | None = None

HISTORY_DAYS = 3_650  # reconcile ten years of history, not only BUD001's default window


def upgrade() -> None:
    with online() as db:
        say("  0025: the spent_amount trigger")
        if db.constraint("daily_plan", "uq_daily_plan_user_date_category") is None:
            back = _last_complete_revision(db)
            raise MigrationRefused("0025 needs uq_daily_plan_user_date_category (0023), which is missing",
                                     "the database was stamped past 0023: run `mita-integrity verify`, then "
                                     f"`mita-integrity migrate downgrade {back}` and `mita-integrity migrate "
                                     "upgrade head` (each migration does only what is missing)")
        refuse_other_definitions(db, unique=True, checks=())
        db.step("install update_daily_plan_spent()", sql_file("0025_daily_plan_spent_trigger.sql"))
        say("    installed update_daily_plan_spent() on transactions")
        clean_up(revision, r0025.STEPS, budget_days=HISTORY_DAYS)  # BUD001, AMT006


def _last_complete_revision(db: Online) -> str:
    """Gives the revision to go back to before upgrading again: 0022 when its objects are there, else the baseline
    (going back to 0022 would leave 0022's missing objects recorded as done)."""
    fks = db.query("SELECT count(*) FROM pg_constraint WHERE conrelid IN ('public.daily_plan'::regclass, "
                   "'public.subscriptions'::regclass) AND conname IN ('fk_daily_plan_user_id', "
                   "'fk_subscriptions_user_id')")[0][0]
    complete = fks == 2 and db.has_column("subscriptions", "deleted_at")
    return "0022_add_missing_fk_constraints" if complete else "0021_add_habit_completions"


def downgrade() -> None:
    with online() as db:
        db.step("drop update_daily_plan_spent()", sql_file("0025_daily_plan_spent_trigger_down.sql"))
