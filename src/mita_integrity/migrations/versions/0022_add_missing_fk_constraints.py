"""Foreign keys for daily_plan and subscriptions, and subscriptions.deleted_at — online.

- alembic_version.version_num widened to varchar(64): the next revision ids are longer than 32 characters;
- subscriptions.deleted_at (+ a partial index of the live rows), for soft delete;
- orphans of daily_plan and subscriptions archived, then removed (REF003, REF004: a soft-deleted orphan
  would still violate the foreign key, so soft deletion cannot be the clean-up);
- fk_daily_plan_user_id and fk_subscriptions_user_id, ON DELETE CASCADE: NOT VALID, then VALIDATE.
Each step inspects the catalog first; re-running, or running on a database that has some of it, is safe.

Revision ID: 0022_add_missing_fk_constraints
Revises: 0021_add_habit_completions
"""

from __future__ import annotations

from mita_integrity.migration_kit import clean_up, online, say
from mita_integrity.migration_state import narrow_version_table, widen_version_table

revision: str = "0022_add_missing_fk_constraints"
down_revision: str | None = "0021_add_habit_completions"
branch_labels: str | None = None
depends_on: str | None = None

FKS = (("daily_plan", "fk_daily_plan_user_id"), ("subscriptions", "fk_subscriptions_user_id"))
RULE = {"daily_plan": "REF003", "subscriptions": "REF004"}


def upgrade() -> None:
    with online() as db:
        say("  0022: foreign keys of daily_plan and subscriptions")
        widen_version_table(db)  # the version table this chain runs with: ours, or the application's when exported
        if not db.has_column("subscriptions", "deleted_at"):
            db.step("subscriptions.deleted_at", "ALTER TABLE subscriptions ADD COLUMN deleted_at timestamptz")
            say("    added subscriptions.deleted_at")
        db.ensure_index("ix_subscriptions_deleted_at", "subscriptions", "(deleted_at) WHERE deleted_at IS NULL")
        for table, name in FKS:  # new rows of nobody are refused from here on, before the clean-up
            db.add_not_valid(table, name, "FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE")
        clean_up(revision, ("REF003", "REF004"))
        for table, name in FKS:
            db.validate(table, name, f"mita-integrity fix --apply --select {RULE[table]}")


def downgrade() -> None:
    with online() as db:
        for table, name in FKS:
            db.drop_constraint(table, name)
        db.drop_index("ix_subscriptions_deleted_at")
        if db.has_column("subscriptions", "deleted_at"):
            db.step("drop subscriptions.deleted_at", "ALTER TABLE subscriptions DROP COLUMN IF EXISTS deleted_at")
        # Back to the width of the baseline; the version row still holds this revision's id (31 characters).
        narrow_version_table(db)
