"""Before a seed writes anything: the MITA tables exist, the schema is the baseline, and they are empty."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ..database.errors import DatabaseStateError
from .plan import MITA_TABLES

BASELINE = "0021_add_habit_completions"  # the seed writes data of the pre-0022 schema
# Reference data that a migration may already have filled; its rows do not make a database "in use".
REFERENCE_TABLES = ("challenges",)


def check_schema(cur: psycopg.Cursor) -> None:
    """Raises DatabaseStateError unless every MITA table exists and alembic_version (if any) is the baseline."""
    cur.execute("SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(quote_ident(t)) IS NULL",
                (list(MITA_TABLES),))
    missing = [r[0] for r in cur.fetchall()]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise DatabaseStateError(
            f"the database has no MITA tables to seed ({shown} missing)",
            f"seed into a database migrated to the baseline: mita-integrity migrate upgrade {BASELINE}",
        )
    # The tool's own version table (standalone), and the application's (an earlier mita-integrity wrote ours there).
    for table in ("integrity.alembic_version", "public.alembic_version"):
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = cur.fetchone()
        if not (row and row[0]):
            continue
        cur.execute(sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(*table.split("."))))
        versions = [r[0] for r in cur.fetchall()]
        if versions and versions != [BASELINE]:
            raise DatabaseStateError(
                f"the database is at revision {', '.join(versions)}; the seed writes data of the baseline "
                f"schema ({BASELINE})",
                f"seed into an empty database migrated to {BASELINE}, then migrate it onwards",
            )


def tables_in_use(cur: psycopg.Cursor) -> list[str]:
    """Gives the MITA tables (reference data aside) that hold at least one row."""
    used = []
    for table in reversed(MITA_TABLES):  # parents first: "users, goals, …" reads best
        if table in REFERENCE_TABLES:
            continue
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
        row = cur.fetchone()
        if row and row[0]:
            used.append(table)
    return used


def empty_or_replace(cur: psycopg.Cursor, replace: bool) -> None:
    """Empties the MITA tables when replace is set; otherwise raises DatabaseStateError if any holds rows."""
    if replace:
        try:
            cur.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in MITA_TABLES)))
        except psycopg.errors.FeatureNotSupported as exc:
            raise DatabaseStateError(
                f"cannot empty the MITA tables: {str(exc).splitlines()[0]}",
                "another table references them; empty or drop it first",
            ) from None
        return
    used = tables_in_use(cur)
    if used:
        shown = ", ".join(used[:3]) + (f" and {len(used) - 3} more" if len(used) > 3 else "")
        raise DatabaseStateError(
            f"the database already holds MITA data ({shown})",
            "seed into an empty migrated database, or pass --replace to empty the MITA tables first",
        )


def fresh_storage(cur: psycopg.Cursor) -> None:
    """Gives the (empty) MITA tables new files in this transaction with a TRUNCATE.

    Nothing changes for the data, but on a server with wal_level=minimal (the embedded one) PostgreSQL then
    writes the seed's rows and index builds without WAL, which a bulk load is mostly made of. Reference tables
    that may hold rows are left alone; when another table references a MITA table, the TRUNCATE is skipped.
    """
    tables = [t for t in MITA_TABLES if t not in REFERENCE_TABLES]
    try:
        with cur.connection.transaction():  # a savepoint: a refused TRUNCATE leaves the seed's transaction usable
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in tables)))
    except psycopg.errors.FeatureNotSupported:
        pass
