"""Baseline: the MITA production schema as it stood right before migration 0022.

This revision is where our chain starts. Its id, ``0021_add_habit_completions``, is the revision a real
production database carries in ``alembic_version`` after the application's own migrations 0001-0021,
so such a database is already "at" this revision and upgrades straight on to 0022; on an empty database
it builds that same schema from ``migrations/sql/0021_add_habit_completions.sql``, a squashed,
final-form DDL (26 tables, their constraints, indexes, comments, the ``update_updated_at_column()``
trigger function and its two triggers), catalog-equal to ``reference/mita_schema_pre0022.sql``.

Revision ID: 0021_add_habit_completions
Revises:
"""

from __future__ import annotations

from importlib import resources

from alembic import op

revision: str = "0021_add_habit_completions"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SQL_FILE = "0021_add_habit_completions.sql"

# Children before parents, so that the drops need no particular FK knowledge; CASCADE still takes
# along whatever a later revision or a person hung on these tables (views, extra FKs, triggers),
# because going to base means none of the MITA schema may remain.
TABLES = (
    "habit_completions", "user_profiles", "user_answers", "notification_logs", "expenses", "budget_advice",
    "ai_advice_templates", "installment_achievements", "installment_calculations",
    "user_financial_profiles", "notifications", "paywall_impression_logs", "feature_access_logs",
    "feature_usage_logs", "challenge_participations", "push_tokens", "moods", "ai_analysis_snapshots",
    "subscriptions", "daily_plan", "transactions", "installments", "habits", "goals", "challenges", "users",
)
# The SERIAL sequences go with their tables; named here too in case one was ever detached (OWNED BY NONE).
SEQUENCES = ("ai_analysis_snapshots_id_seq", "expenses_id_seq", "user_answers_id_seq", "user_profiles_id_seq")


def baseline_sql() -> str:
    """Gives the text of the squashed baseline DDL shipped in the package."""
    return resources.files("mita_integrity.migrations").joinpath("sql", SQL_FILE).read_text(encoding="utf-8")


def upgrade() -> None:
    # One string through the driver: without parameters psycopg 3 sends it as a simple query, which
    # runs many statements and leaves the semicolons inside the plpgsql body alone (no splitting).
    op.get_bind().exec_driver_sql(baseline_sql())


def downgrade() -> None:
    # IF EXISTS everywhere: inside one PostgreSQL transaction a single failing DROP would abort the rest.
    for table in TABLES:
        op.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    for sequence in SEQUENCES:
        op.execute(f'DROP SEQUENCE IF EXISTS "{sequence}" CASCADE')
    op.execute("DROP FUNCTION IF EXISTS update_updated_at_column() CASCADE")
