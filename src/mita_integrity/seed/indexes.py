"""Indexes and foreign keys of the big tables set aside during the bulk insert, then rebuilt as they were.

Maintaining a B-tree row by row for millions of random uuids costs several times more than building it
once from sorted input, and a foreign key checks every inserted row through a queued trigger where
re-adding it validates all rows in one join. Definitions are read from the catalog (pg_get_indexdef,
pg_get_constraintdef) before anything is dropped; the drop and the rebuild happen inside the seed's one
transaction, so an error anywhere rolls the drop back too: nothing is ever left missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from ..database.errors import DatabaseStateError


@dataclass(frozen=True)
class SavedIndex:
    """One index as it was: its definition, and the constraint it backs (primary key or unique), if any."""

    schema: str
    table: str
    name: str
    definition: str  # CREATE [UNIQUE] INDEX … as pg_get_indexdef gives it
    constraint: str | None
    constraint_definition: str | None
    comment: str | None


_LIST = """
SELECT n.nspname, c.relname, ic.relname, pg_get_indexdef(i.indexrelid), con.conname,
       pg_get_constraintdef(con.oid), obj_description(i.indexrelid, 'pg_class')
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class ic ON ic.oid = i.indexrelid
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                              AND con.contype IN ('p', 'u')
 WHERE i.indrelid = to_regclass(%s)
   -- an index that a foreign key of another table relies on, or one of an exclusion constraint, stays
   AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conindid = i.indexrelid
                      AND (f.contype = 'f' OR f.contype = 'x'))
 ORDER BY con.conname IS NULL, ic.relname"""


@dataclass(frozen=True)
class SavedForeignKey:
    """One foreign key of a table (as pg_get_constraintdef gives it, NOT VALID included)."""

    schema: str
    table: str
    name: str
    definition: str


def saved_foreign_keys(cur: psycopg.Cursor, tables: tuple[str, ...]) -> list[SavedForeignKey]:
    """Gives the foreign keys that the tables hold (not those pointing at them)."""
    out: list[SavedForeignKey] = []
    for table in tables:
        cur.execute("SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid) "
                    "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE con.conrelid = to_regclass(%s) AND con.contype = 'f' ORDER BY con.conname", (table,))
        out += [SavedForeignKey(*row) for row in cur.fetchall()]
    return out


def drop_foreign_keys(cur: psycopg.Cursor, saved: list[SavedForeignKey]) -> None:
    """Drops the saved foreign keys."""
    for fk in saved:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(fk.schema, fk.table), sql.Identifier(fk.name)))


def restore_foreign_keys(cur: psycopg.Cursor, saved: list[SavedForeignKey]) -> None:
    """Re-adds the saved foreign keys (validating them, unless they were NOT VALID before)."""
    for fk in saved:
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(fk.schema, fk.table), sql.Identifier(fk.name), sql.SQL(fk.definition)))


def saved_indexes(cur: psycopg.Cursor, tables: tuple[str, ...]) -> list[SavedIndex]:
    """Gives the indexes of tables that can be dropped and rebuilt (constraint-backed ones first)."""
    out: list[SavedIndex] = []
    for table in tables:
        cur.execute(_LIST, (table,))
        out += [SavedIndex(*row) for row in cur.fetchall()]
    return out


def drop_indexes(cur: psycopg.Cursor, saved: list[SavedIndex]) -> None:
    """Drops the saved indexes (and the constraints they back)."""
    for ix in saved:
        if ix.constraint:
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(ix.schema, ix.table), sql.Identifier(ix.constraint)))
        else:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(ix.schema, ix.name)))


def restore_indexes(cur: psycopg.Cursor, saved: list[SavedIndex]) -> None:
    """Rebuilds the saved indexes with their original names, definitions, constraints and comments."""
    for ix in saved:
        if ix.constraint and ix.constraint_definition:
            cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(ix.schema, ix.table), sql.Identifier(ix.constraint),
                sql.SQL(ix.constraint_definition)))
            cur.execute("SELECT ic.relname FROM pg_constraint con JOIN pg_class ic ON ic.oid = con.conindid "
                        "WHERE con.conrelid = to_regclass(%s) AND con.conname = %s",
                        (f'"{ix.schema}"."{ix.table}"', ix.constraint))
            row = cur.fetchone()
            if row and row[0] != ix.name:
                cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(ix.schema, row[0]), sql.Identifier(ix.name)))
        else:
            cur.execute(sql.SQL(ix.definition))
        if ix.comment is not None:
            cur.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(
                sql.Identifier(ix.schema, ix.name), sql.Literal(ix.comment)))
    _verify(cur, saved)


def _verify(cur: psycopg.Cursor, saved: list[SavedIndex]) -> None:
    for ix in saved:
        cur.execute("SELECT pg_get_indexdef(to_regclass(%s))", (f'"{ix.schema}"."{ix.name}"',))
        row = cur.fetchone()
        if not row or row[0] != ix.definition:
            raise DatabaseStateError(
                f"the index {ix.name} of {ix.table} could not be rebuilt as it was",
                "nothing was seeded (the transaction was rolled back)",
            )
