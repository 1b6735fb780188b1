"""Foreign keys for daily_plan and subscriptions, and subscriptions.deleted_at — online.

- alembic_version.version_num widened to varchar(64): the next revision ids are longer than 32 characters;
- subscriptions.deleted_at (+ a partial index of the live rows), for soft delete;
- orphans of daily_plan and subscriptions archived, then removed (REF003, REF004: a soft-deleted orphan
  would still violate the foreign key, so soft deletion cannot be the clean-up);
- fk_daily_plan_user_id and fk_subscriptions_user_id, ON DELETE CASCADE: NOT VALID, then VALIDATE.
The downgrade keeps what deleted_at held in integrity.subscriptions_deleted_at (soft-deleted rows would
otherwise become live with no trace; `migrate downgrade` asks for --force first), and the upgrade puts it back.
Each step inspects the catalog first; re-running, or running on a database that has some of it, is safe.

Revision ID: 0022_add_missing_fk_constraints
Revises: 0021_add_habit_completions
"""

from __future__ import annotations

from mita_integrity.migrations.frozen import r0022
from mita_integrity.migrations.frozen.cleanup_v1 import clean_up
from mita_integrity.migrations.frozen.kit_v1 import narrow_version_table, online, say, widen_version_table
from mita_integrity.migrations.frozen.online_v1 import Online, counted

revision: str = "0022_add_missing_fk_constraints"
down_revision: str | None = "0021_add_habit_completions"
branch_labels: str | None = None
depends_on: str | None = None

FKS = (("daily_plan", "fk_daily_plan_user_id"), ("subscriptions", "fk_subscriptions_user_id"))
RULE = {"daily_plan": "REF003", "subscriptions": "REF004"}
# Where the downgrade keeps subscriptions.deleted_at (the upgrade puts it back and empties it).
ARCHIVE = "integrity.subscriptions_deleted_at"


def _restore_soft_deletes(db: Online) -> None:
    """Puts back the deleted_at a downgrade of 0022 archived (a row soft-deleted since keeps its own)."""
    if not db.query("SELECT to_regclass(%s) IS NOT NULL", ARCHIVE)[0][0]:
        return
    restored = db.query(f"SELECT count(*) FROM {ARCHIVE} a JOIN subscriptions s ON s.id = a.id "
                        "WHERE s.deleted_at IS NULL")[0][0]
    db.step("restore subscriptions.deleted_at",
            f"UPDATE subscriptions s SET deleted_at = a.deleted_at FROM {ARCHIVE} a "
            "WHERE s.id = a.id AND s.deleted_at IS NULL",
            f"DROP TABLE {ARCHIVE}")
    say(f"    restored deleted_at of {counted(restored, 'soft-deleted subscription')} from {ARCHIVE}")


def upgrade() -> None:
    with online() as db:
        say("  0022: foreign keys of daily_plan and subscriptions")
        widen_version_table(db)  # the version table this chain runs with: ours, or the application's when exported
        if not db.has_column("subscriptions", "deleted_at"):
            db.step("subscriptions.deleted_at", "ALTER TABLE subscriptions ADD COLUMN deleted_at timestamptz")
            say("    added subscriptions.deleted_at")
        _restore_soft_deletes(db)
        db.ensure_index("ix_subscriptions_deleted_at", "subscriptions", "(deleted_at) WHERE deleted_at IS NULL")
        for table, name in FKS:  # new rows of nobody are refused from here on, before the clean-up
            db.add_not_valid(table, name, "FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE")
        clean_up(revision, r0022.STEPS)  # REF003, REF004: the SQL fix ran when this was written
        for table, name in FKS:
            db.validate(table, name, f"mita-integrity fix --apply --select {RULE[table]}")


def downgrade() -> None:
    with online() as db:
        for table, name in FKS:
            db.drop_constraint(table, name)
        db.drop_index("ix_subscriptions_deleted_at")
        if db.has_column("subscriptions", "deleted_at"):
            soft = db.query("SELECT count(*) FROM subscriptions WHERE deleted_at IS NOT NULL")[0][0]
            # One transaction: the archive is written exactly when the column goes.
            db.step("drop subscriptions.deleted_at", *([
                "CREATE SCHEMA IF NOT EXISTS integrity",
                f"CREATE TABLE IF NOT EXISTS {ARCHIVE} (id uuid PRIMARY KEY, deleted_at timestamptz NOT NULL, "
                "archived_at timestamptz NOT NULL DEFAULT now())",
                f"INSERT INTO {ARCHIVE} (id, deleted_at) SELECT id, deleted_at FROM subscriptions "
                "WHERE deleted_at IS NOT NULL ON CONFLICT (id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at, "
                "archived_at = now()"] if soft else []),
                "ALTER TABLE subscriptions DROP COLUMN IF EXISTS deleted_at")
            if soft:
                say(f"    dropped subscriptions.deleted_at: {counted(soft, 'soft-deleted subscription')} now read as "
                    f"live; their deleted_at is archived in {ARCHIVE}, and upgrading to 0022 again puts it back")
        # Back to the width of the baseline; the version row still holds this revision's id (31 characters).
        narrow_version_table(db)
