"""Section 14: B-tree corruption, found with amcheck (only with --physical)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ...findings import FixSafety, Severity, Status
from .base import Family, QueryRule, Rule
from .context import CheckContext, Outcome

PHY001 = QueryRule(
    code="PHY001", name="btree-corruption", section=14, severity=Severity.CRITICAL,
    finds="B-tree indexes whose structure amcheck's bt_index_check reports as corrupt.",
    why="A corrupt index returns wrong answers silently: a unique index may let duplicates in, a lookup may "
        "miss rows that exist.",
    example="ERROR: item order invariant violated for index \"users_email_key\"",
    repair="None by fix: REINDEX INDEX CONCURRENTLY the index, then find out why (storage, a collation change).",
    repair_safety=FixSafety.NONE, table=None, physical=True,
    message="index structure is corrupt", unit="index",
    hint="REINDEX INDEX CONCURRENTLY it; check the storage and collations",
)

RULES: tuple[Rule, ...] = (PHY001,)


def evaluate(ctx: CheckContext, rules: tuple[Rule, ...]) -> list[Outcome]:
    """Gives one outcome per checked table: the number of corrupt B-tree indexes on it."""
    # The rules run under search_path pg_catalog, pg_temp: amcheck's functions are called in the schema the
    # extension was created in (public by default), qualified, never found by the path.
    ctx.cur.execute("SELECT (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                    "         WHERE e.extname = 'amcheck'), "
                    "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck')")
    found, available = ctx.cur.fetchone() or (None, False)
    if found is None:  # CREATE EXTENSION only helps where the server ships amcheck (the embedded one does not)
        return [Outcome("PHY001", "(schema)", status=Status.SKIPPED, reason=(
            "the amcheck extension is not installed (CREATE EXTENSION amcheck as a superuser)" if available else
            "amcheck is not available on this server (its contrib files are not installed): run --physical "
            "where the server ships it"))]
    ctx.cur.execute(
        """SELECT t.relname, i.relname, i.oid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
             JOIN pg_am am ON am.oid = i.relam
            WHERE n.nspname = 'public' AND am.amname = 'btree' AND x.indisvalid AND x.indisready
              AND i.relkind = 'i' -- a partitioned table's index has no storage: its partitions' indexes are checked
            ORDER BY 1, 2"""
    )
    check = sql.SQL("SELECT {}.bt_index_check(%s::pg_catalog.regclass)").format(sql.Identifier(str(found)))
    bad: dict[str, list[str]] = {}
    tables: list[str] = []
    for table, index, oid in ctx.cur.fetchall():
        if table not in tables:
            tables.append(table)
        ctx.cur.execute("SAVEPOINT phy001")
        try:
            ctx.cur.execute(check, (oid,))
            ctx.cur.execute("RELEASE SAVEPOINT phy001")
        except psycopg.errors.IndexCorrupted:
            ctx.cur.execute("ROLLBACK TO SAVEPOINT phy001")
            bad.setdefault(table, []).append(index)
    return [Outcome("PHY001", t, len(bad.get(t, [])), sample=tuple(bad.get(t, []))) for t in tables]


FAMILY = Family("physical", RULES, evaluate)
