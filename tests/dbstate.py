"""What a test compares a database by: an order-independent checksum per table, row counts, the archive."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from mita_integrity.database.connection import Database, connect


def _tables(cur: Any) -> list[str]:
    cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1")
    return [r[0] for r in cur.fetchall()]


def checksums(db: Database) -> dict[str, tuple[int, str]]:
    """Gives per public table (row count, md5 over the sorted md5s of every row's text): order-independent."""
    out = {}
    with connect(db) as conn, conn.cursor() as cur:
        for table in _tables(cur):
            cur.execute(sql.SQL("SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
                                "FROM (SELECT md5(t::text) AS h FROM {} t) x").format(sql.Identifier(table)))
            count, digest = cur.fetchone()  # type: ignore[misc]
            out[table] = (int(count), str(digest))
    return out


def row_counts(db: Database) -> dict[str, int]:
    return {table: count for table, (count, _) in checksums(db).items()}


def archived(db: Database, run_id: str | None = None) -> dict[tuple[str, str], int]:
    """Gives archive rows per (table, action), of one run or of all."""
    with connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('integrity.archive') IS NOT NULL")
        if not cur.fetchone()[0]:  # type: ignore[index]
            return {}
        cur.execute("SELECT table_name, action, count(*) FROM integrity.archive "
                    "WHERE %(run)s::uuid IS NULL OR run_id = %(run)s::uuid GROUP BY 1, 2", {"run": run_id})
        return {(t, a): int(n) for t, a, n in cur.fetchall()}


def assert_nothing_lost(before: dict[str, int], after: dict[str, int], archive: dict[tuple[str, str], int]) -> None:
    """Live rows + rows archived as removed − rows archived as added = rows before, for every table."""
    for table, count in before.items():
        removed = archive.get((table, "delete"), 0)
        added = archive.get((table, "insert"), 0)
        assert after[table] + removed - added == count, (
            f"{table}: {count} rows before, {after[table]} after, {removed} archived as removed, {added} added")


def run_sql(db: Database, statement: str) -> list[tuple[Any, ...]]:
    """Runs SQL (several statements allowed) in one committed transaction; gives the rows of the last one."""
    with connect(db) as conn:
        cur = conn.execute(statement.encode())
        rows = cur.fetchall() if cur.description else []
        conn.commit()
    return rows


def cli_url(db: Database, **extra: str) -> str:
    """Gives the database's full URL (password included) for the CLI, with extra query options."""
    from mita_integrity.database.urls import build_url

    return build_url({**db.parsed.params, **extra}, mask_password=False)
