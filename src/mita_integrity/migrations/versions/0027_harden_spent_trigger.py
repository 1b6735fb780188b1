"""update_daily_plan_spent() hardened at the edges of the data; TRUNCATE handled; spent_amount reconciled again.

0025's function reaches production databases unchanged (migrations are frozen), so its successor comes
here (migrations/sql/0027_harden_spent_trigger.sql): only transactions daily_plan can hold exactly count
(a category of at most 100 characters, an amount with at most two decimals, finite and below 10^10; a key
whose total would not fit keeps its row: rules/plan_limits.py, BUD002 names the rest), so no application
write fails and nothing is cut or rounded; TRUNCATE transactions sets every spent_amount to 0; the
function's search_path is pinned. Then BUD001 and AMT006 are reconciled again with the same definition
(archived), since 0025's function may have rounded or cut in between.

Revision ID: 0027_harden_spent_trigger
Revises: 0026_complete_user_foreign_keys
"""

from __future__ import annotations

from mita_integrity.migrations.frozen import r0027
from mita_integrity.migrations.frozen.cleanup_v1 import clean_up
from mita_integrity.migrations.frozen.kit_v1 import online, say, sql_file
from mita_integrity.migrations.frozen.online_v1 import MigrationRefused

revision: str = "0027_harden_spent_trigger"
down_revision: str | None = "0026_complete_user_foreign_keys"
branch_labels: str | None = None
depends_on: str | None = None

HISTORY_DAYS = 3_650  # as 0025: reconcile ten years of history


def upgrade() -> None:
    with online() as db:
        say("  0027: the spent_amount trigger, hardened")
        if db.constraint("daily_plan", "uq_daily_plan_user_date_category") is None:
            raise MigrationRefused("0027 needs uq_daily_plan_user_date_category (0023), which is missing",
                                     "the database was stamped past 0023: run `mita-integrity verify`, then "
                                     "downgrade to 0022 and upgrade again")
        db.step("install update_daily_plan_spent() (0027)", sql_file("0027_harden_spent_trigger.sql"))
        say("    installed update_daily_plan_spent() and its TRUNCATE trigger on transactions")
        clean_up(revision, r0027.STEPS, budget_days=HISTORY_DAYS)  # BUD001, AMT006


def downgrade() -> None:
    with online() as db:
        db.step("put back 0025's update_daily_plan_spent()", sql_file("0027_harden_spent_trigger_down.sql"),
                sql_file("0025_daily_plan_spent_trigger.sql"))
