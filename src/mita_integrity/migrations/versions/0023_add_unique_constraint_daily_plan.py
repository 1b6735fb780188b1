"""One calendar row per (user, day, category): dates normalised, duplicates merged, a unique key — online.

- dates with a time of day normalised to midnight UTC (CAL001), then the rows of each (user, day,
  category) merged into one keeper — the earliest created_at, then id — spent summed, planned and
  daily_budget the maximum (for `goal_savings`, where two goals each plan their own saving, planned is
  summed, so neither amount is lost); the removed rows archived (DUP002). Both are `fix`'s safe repairs;
- uq_daily_plan_user_date_category: UNIQUE NULLS NOT DISTINCT (user_id, date, category), built with
  CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX (NULL categories collide too);
- ck_daily_plan_date_midnight: every date at midnight UTC (NOT VALID, then VALIDATE), so a time of day
  cannot make a second row of one day again;
- idx_daily_plan_user_date_category and ix_daily_plan_user_id dropped (concurrently): the unique key's index
  serves both, and every write to daily_plan (the 0025 trigger's above all) maintained them for nothing.

Revision ID: 0023_add_unique_constraint_daily_plan
Revises: 0022_add_missing_fk_constraints
"""

from __future__ import annotations

from psycopg import errors

from mita_integrity.migrations.frozen import r0023
from mita_integrity.migrations.frozen.cleanup_v1 import clean_up
from mita_integrity.migrations.frozen.kit_v1 import online, refuse_other_definitions, say

revision: str = "0023_add_unique_constraint_daily_plan"
down_revision: str | None = "0022_add_missing_fk_constraints"
branch_labels: str | None = None
depends_on: str | None = None

UNIQUE = "uq_daily_plan_user_date_category"
MIDNIGHT = "ck_daily_plan_date_midnight"
REDUNDANT = {"idx_daily_plan_user_date_category": "(user_id, date, category)", "ix_daily_plan_user_id": "(user_id)"}


def upgrade() -> None:
    with online() as db:
        say("  0023: one calendar row per (user, day, category)")
        refuse_other_definitions(db, unique=True, checks=())
        if db.constraint("daily_plan", UNIQUE) is None:
            for attempt in range(1, 4):
                clean_up(revision, r0023.STEPS)  # CAL001, DUP002
                try:
                    db.ensure_index(UNIQUE, "daily_plan", "(user_id, date, category) NULLS NOT DISTINCT", unique=True)
                    break
                except errors.UniqueViolation:  # the application wrote a duplicate meanwhile: merge it, build again
                    if attempt == 3:
                        raise
                    say("    a duplicate appeared during the build; merging it and building again")
            db.step(f"add {UNIQUE}", f"ALTER TABLE daily_plan ADD CONSTRAINT {UNIQUE} UNIQUE USING INDEX {UNIQUE}")
            say(f"    added {UNIQUE}")
        db.add_constraint("daily_plan", MIDNIGHT, "CHECK (date = date_trunc('day', date, 'UTC'))",
                          "mita-integrity fix --apply --select CAL001")
        if db.constraint("daily_plan", UNIQUE) is not None:
            for index in REDUNDANT:
                db.drop_index(index)


def downgrade() -> None:
    with online() as db:
        for index, columns in REDUNDANT.items():  # back before the key goes, so daily_plan is never without them
            db.ensure_index(index, "daily_plan", columns)
        db.drop_constraint("daily_plan", MIDNIGHT)
        db.drop_constraint("daily_plan", UNIQUE)
        db.drop_index(UNIQUE)
