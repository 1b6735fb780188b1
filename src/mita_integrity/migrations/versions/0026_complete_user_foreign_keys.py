"""A foreign key to users, ON DELETE CASCADE, on every user-owned table — deleting a user works.

- orphans of transactions, habits, moods, push_tokens, budget_advice, notification_logs archived and
  removed (REF001, REF005, REF010), then fk_<table>_user_id ON DELETE CASCADE added NOT VALID and
  validated, with an index leading with user_id where none exists;
- the foreign keys to users that say NO ACTION (deleting a user fails on them: the right to be forgotten)
  re-created as ON DELETE CASCADE under their own names — the new one added NOT VALID and validated
  before the old one is dropped, so the table is never without its key.

Revision ID: 0026_complete_user_foreign_keys
Revises: 0025_add_daily_plan_spent_trigger
"""

from __future__ import annotations

from mita_integrity.migrations.frozen import r0026
from mita_integrity.migrations.frozen.cleanup_v1 import clean_up
from mita_integrity.migrations.frozen.kit_v1 import online, say
from mita_integrity.migrations.frozen.online_v1 import Online

revision: str = "0026_complete_user_foreign_keys"
down_revision: str | None = "0025_add_daily_plan_spent_trigger"
branch_labels: str | None = None
depends_on: str | None = None

# The user-owned tables with no foreign key to users in the baseline (rules/expected.py says what 0026 leaves:
# the rules check against it; the migration keeps its own copy, as it ran).
USER_FK_TABLES_0026 = ("transactions", "habits", "moods", "push_tokens", "budget_advice", "notification_logs")
# The NO ACTION keys of the baseline, and the index one of their columns lacks.
NO_ACTION_0021 = {
    "ai_analysis_snapshots": "ai_analysis_snapshots_user_id_fkey",
    "feature_access_logs": "feature_access_logs_user_id_fkey",
    "feature_usage_logs": "feature_usage_logs_user_id_fkey",
    "paywall_impression_logs": "paywall_impression_logs_user_id_fkey",
}
NEW_INDEXES = {"ai_analysis_snapshots": "ix_ai_analysis_snapshots_user_id"}


def _no_action_keys(db: Online) -> list[tuple[str, str]]:
    """Gives (table, constraint) of every FK on user_id to users that does not cascade."""
    rows = db.query("""SELECT c.relname, con.conname FROM pg_constraint con
                         JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
                        WHERE n.nspname = 'public' AND con.contype = 'f' AND con.confrelid = 'public.users'::regclass
                          AND a.attname = 'user_id' AND con.confdeltype IN ('a', 'r') ORDER BY 1""")
    return [(str(t), str(n)) for t, n in rows]


def _recreate(db: Online, table: str, name: str, on_delete: str) -> None:
    """Swaps a FK for one with another ON DELETE, never leaving the table without its key."""
    temporary = f"{name[:50]}_swap"
    if not db.add_constraint(table, temporary, f"FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE {on_delete}"):
        return  # rows of nobody: the old key stays until they are resolved and the migration runs again
    db.step(f"swap {name}", f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"',
            f'ALTER TABLE {table} RENAME CONSTRAINT "{temporary}" TO "{name}"')
    say(f"    {name}: ON DELETE {on_delete}")


def upgrade() -> None:
    with online() as db:
        say("  0026: a cascading foreign key to users on every user-owned table")
        names = {table: f"fk_{table}_user_id" for table in USER_FK_TABLES_0026}
        for table, name in names.items():
            db.add_not_valid(table, name, "FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE")
        clean_up(revision, r0026.STEPS)  # REF001, REF005, REF010
        for table, name in names.items():
            db.ensure_fk_index(table, "user_id")
            db.validate(table, name, "mita-integrity fix --apply --select REF")
        for table, name in _no_action_keys(db):
            db.ensure_fk_index(table, "user_id")
            _recreate(db, table, name, "CASCADE")


def downgrade() -> None:
    with online() as db:
        for table, name in NO_ACTION_0021.items():
            if db.constraint(table, name) is not None:
                _recreate(db, table, name, "NO ACTION")
        for index in NEW_INDEXES.values():
            db.drop_index(index)
        for table in USER_FK_TABLES_0026:
            db.drop_constraint(table, f"fk_{table}_user_id")
