"""What `verify`'s probes write with: throw-away rows built from the catalog, under SAVEPOINTs.

Every NOT NULL column without a default gets a value of its type; a row that a CHECK or FK rejects is
skipped with its reason. Nothing here commits: the probes' caller rolls back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from ..check.rules.context import Schema

PROBE_TEXT = "verify-probe"
UTC_DAY = "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"  # today at midnight UTC
_REFERENCES = re.compile(r"REFERENCES\s+\S+?\(([^)]+)\)")


class ProbeError(Exception):
    """The probe cannot run here (privileges, a read-only server); the message starts "cannot probe"."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): usable as a cast target as is
    category: str  # pg_type.typcategory (of the base type for a domain)
    not_null: bool
    defaulted: bool  # a default, an identity or a generated column: the database fills it


def load_columns(cur: psycopg.Cursor[Any]) -> dict[str, list[Column]]:
    """Gives every public table's columns in order, with what the row builder needs to know."""
    cur.execute(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                  coalesce(bt.typcategory, t.typcategory)::text, a.attnotnull,
                  a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname, a.attnum""")
    out: dict[str, list[Column]] = {}
    for table, *rest in cur.fetchall():
        out.setdefault(table, []).append(Column(*rest))
    return out


def value_for(column: Column) -> sql.Composable | None:
    """Gives a valid value of the column's type (text cast to varchar(n) is cut to n), or None."""
    typ = sql.SQL(column.type)
    if column.type == "uuid":
        return sql.SQL("gen_random_uuid()")
    if column.type in ("json", "jsonb") or column.category == "A":
        return sql.SQL("'{{}}'::{}").format(typ)
    if column.category == "S":
        return sql.SQL("{}::{}").format(sql.Literal(f"{PROBE_TEXT}-{uuid.uuid4().hex[:12]}"), typ)
    if column.category == "E":
        return sql.SQL("(enum_range(NULL::{}))[1]").format(typ)
    if column.category == "D" and (column.type == "date" or column.type.startswith("timestamp")):
        # Today at midnight UTC: a valid instant that also satisfies "a day, not a time" CHECKs (daily_plan.date).
        return sql.SQL("(now() AT TIME ZONE 'UTC')::date::{}").format(typ)
    known = {"N": "1::{}", "B": "false", "D": "now()::{}", "T": "'0'::{}"}
    if column.category in known:
        return sql.SQL(known[column.category]).format(typ)
    return None


def reason(exc: psycopg.Error) -> str:
    """Gives the first line of a database error."""
    text = getattr(exc.diag, "message_primary", None) or str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def savepoint(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A SAVEPOINT inside the probe's open transaction (never a transaction of its own, never a COMMIT)."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("a probe savepoint needs the probe's transaction to be open")
    with conn.transaction():
        yield


def require(cur: psycopg.Cursor[Any], privileges: dict[str, str]) -> None:
    """Raises ProbeError naming what the role lacks ({table: 'INSERT,DELETE'}) or that the server only reads."""
    cur.execute("SELECT current_user, pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'")
    user, read_only = cur.fetchone() or ("?", False)
    if read_only:
        raise ProbeError("cannot probe: this server only reads (a replica, or read-only transactions)")
    lacking = []
    for table, wanted in privileges.items():
        missing = []
        for privilege in wanted.split(","):
            cur.execute("SELECT to_regclass(%s) IS NULL OR has_table_privilege(%s, %s)",
                        (f"public.{table}", f"public.{table}", privilege))
            row = cur.fetchone()
            if not (row and row[0]):
                missing.append(privilege)
        if missing:
            lacking.append(f"{', '.join(missing)} on {table}")
    if lacking:
        raise ProbeError(f"cannot probe: role {user} lacks {'; '.join(lacking)}")


@dataclass
class Prober:
    """Builds throw-away rows inside the probe's transaction: a user, then rows of any table."""

    conn: psycopg.Connection[Any]
    schema: Schema
    columns: dict[str, list[Column]]
    user_id: str = ""
    made: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> the row inserted
    failed: dict[str, str] = field(default_factory=dict)  # table -> why no row could be built

    def make_user(self) -> str:
        """Inserts the throw-away user; raises ProbeError when even that is refused."""
        try:
            with savepoint(self.conn):
                self.user_id = str(self.insert("users", {"id": sql.Literal(str(uuid.uuid4()))})["id"])
        except psycopg.Error as exc:
            raise ProbeError(f"cannot probe: inserting a throw-away user failed: {reason(exc)}") from None
        return self.user_id

    def insert(self, table: str, overrides: dict[str, sql.Composable]) -> dict[str, Any]:
        """Inserts one row (NOT NULL columns filled, the overrides as given); gives it as a dict."""
        names: list[str] = []
        values: list[sql.Composable] = []
        for column in self.columns.get(table, []):
            if column.name in overrides:
                value: sql.Composable | None = overrides[column.name]
            elif column.not_null and not column.defaulted:
                value = self._value(table, column)
            else:
                continue
            if value is None:
                raise LookupError(f"no probe value for {column.name} ({column.type})")
            names.append(column.name)
            values.append(value)
        statement = sql.SQL("INSERT INTO public.{} AS x ({}) VALUES ({}) RETURNING to_jsonb(x)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(values))
        with self.conn.cursor() as cur:
            cur.execute(statement)
            row = cur.fetchone()
        return dict(row[0]) if row else {}

    def ensure(self, table: str, visiting: frozenset[str] = frozenset()) -> dict[str, Any] | None:
        """Gives the probe's row of table, inserting it (and the parents it needs) under a savepoint."""
        if table in self.made or table in self.failed:
            return self.made.get(table)
        if table in visiting:
            self.failed[table] = "its foreign keys form a cycle"
            return None
        try:
            owner = self._owner(table, visiting | {table})  # parents first, each under its own savepoint
            with savepoint(self.conn):
                self.made[table] = self.insert(table, owner)
        except (psycopg.Error, LookupError) as exc:
            self.failed.setdefault(table, reason(exc) if isinstance(exc, psycopg.Error) else str(exc))
            return None
        return self.made[table]

    def _owner(self, table: str, visiting: frozenset[str]) -> dict[str, sql.Composable]:
        """Gives the values that tie the row to the throw-away user and to the parent rows it needs."""
        out: dict[str, sql.Composable] = {}
        types = {c.name: c for c in self.columns.get(table, [])}
        if "user_id" in types and types["user_id"].type == "uuid":
            out["user_id"] = sql.SQL("{}::uuid").format(sql.Literal(self.user_id))
        for con in self.schema.constraints:
            if con.kind != "f" or con.table != table or len(con.columns) != 1 or con.columns[0] in out:
                continue
            column = types.get(con.columns[0])
            if column is None or not column.not_null or column.defaulted or con.ref_table is None:
                continue
            if con.ref_table == "users":
                out[column.name] = sql.SQL("{}::{}").format(sql.Literal(self.user_id), sql.SQL(column.type))
                continue
            match = _REFERENCES.search(con.definition)
            parent = self.ensure(con.ref_table, visiting)
            if parent is None or not match:
                raise LookupError(f"no parent row in {con.ref_table} for {column.name}: "
                                  f"{self.failed.get(con.ref_table, 'not built')}")
            ref_column = match.group(1).strip().strip('"')
            out[column.name] = sql.SQL("{}::{}").format(sql.Literal(str(parent.get(ref_column))),
                                                         sql.SQL(column.type))
        return out

    def _value(self, table: str, column: Column) -> sql.Composable | None:
        if table == "users" and column.name == "email":
            return sql.Literal(f"{PROBE_TEXT}-{uuid.uuid4().hex[:12]}@example.invalid")
        return value_for(column)

    def count(self, table: str) -> int:
        """Gives how many rows of table belong to the throw-away user."""
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM public.{} WHERE user_id = %s").format(sql.Identifier(table)),
                        (self.user_id,))
            row = cur.fetchone()
        return int(row[0]) if row else 0
