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

from mita_integrity.migrations.frozen.online_v1 import MigrationRefused

revision: str = "0021_add_habit_completions"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SQL_FILE = "0021_add_habit_completions.sql"

def baseline_sql() -> str:
    """Gives the text of the squashed baseline DDL shipped in the package."""
    return resources.files("mita_integrity.migrations").joinpath("sql", SQL_FILE).read_text(encoding="utf-8")


def upgrade() -> None:
    # One string through the driver: without parameters psycopg 3 sends it as a simple query, which
    # runs many statements and leaves the semicolons inside the plpgsql body alone (no splitting).
    op.get_bind().exec_driver_sql(baseline_sql())


def downgrade() -> None:
    # The baseline is the application's own schema: going below it would drop every MITA table with its data.
    # `migrate downgrade` refuses before it starts; this stops plain `alembic downgrade -1` at the baseline too.
    raise MigrationRefused(
        f"refused: downgrading {revision} would drop every MITA table; it is the lowest revision of this chain")
