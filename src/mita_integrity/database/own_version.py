"""The tool's own version table: where it lives, and its revision read through a plain psycopg cursor.

Apart from chain_state (which reads and writes both chains through SQLAlchemy) so that `check` and `verify`,
which only read the revision for their reports, do not import SQLAlchemy: 0.17 s of every `check` process.

Imports nothing of the project.
"""

from __future__ import annotations

from typing import Any

BASELINE = "0021_add_habit_completions"
OWN_SCHEMA = "integrity"
OWN_TABLE = "alembic_version"
OWN = f"{OWN_SCHEMA}.{OWN_TABLE}"
# Our revision ids reach 37 characters; Alembic's own default column holds 32.
VERSION_WIDTH = 64

_OWN_READABLE = f"""SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = '{OWN_SCHEMA}'
                                          AND has_schema_privilege(n.oid, 'USAGE')) THEN false
                        WHEN to_regclass('{OWN}') IS NULL THEN false
                        ELSE has_table_privilege('{OWN}', 'SELECT') END"""


def readable_own_revision(cur: Any) -> str | None:
    """Gives the tool's chain revision through a psycopg cursor (None when absent or not readable by the role)."""
    cur.execute(_OWN_READABLE)
    row = cur.fetchone()
    if not (row and row[0]):
        return None
    cur.execute(f"SELECT version_num FROM {OWN} LIMIT 1")
    row = cur.fetchone()
    return str(row[0]) if row else None
