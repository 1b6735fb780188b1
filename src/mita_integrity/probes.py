"""`verify`'s probes: writes that prove a constraint or a trigger works, each inside one transaction that is
always rolled back.

A probe inserts a throw-away user and rows built generically from the catalog (every NOT NULL column
without a default gets a value of its type), under SAVEPOINTs so one rejected row does not abort the
rest. The caller (verify.probe) opens the transaction, sets its timeouts and rolls it back whatever
happens; nothing here commits.
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

from .rules.context import Schema

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


@dataclass(frozen=True)
class ProbeResult:
    passed: bool
    evidence: str


def _uuid(value: str) -> sql.Composable:
    return sql.SQL("{}::uuid").format(sql.Literal(value))


def cascade(conn: psycopg.Connection[Any], schema: Schema, columns: dict[str, list[Column]],
            tables: list[str]) -> ProbeResult:
    """A throw-away user with one row in each table, deleted: every row must go with it."""
    with conn.cursor() as cur:
        require(cur, {"users": "INSERT,DELETE"})
    p = Prober(conn, schema, columns)
    p.make_user()
    for table in tables:
        p.ensure(table)
    probed = [t for t in tables if t in p.made]
    skipped = "; ".join(f"skipped {t}: {p.failed[t]}" for t in tables if t in p.failed)
    blocking = {c.name: c.table for c in schema.constraints
                if c.kind == "f" and c.ref_table == "users" and c.on_delete in ("a", "r") and c.table in p.made}
    problems = []
    delete = "DELETE FROM public.users WHERE id = %s"
    try:
        with savepoint(conn), conn.cursor() as cur:
            cur.execute(delete, (p.user_id,))
    except psycopg.errors.ForeignKeyViolation as exc:
        if exc.diag.constraint_name not in blocking:
            return ProbeResult(False, f"deleting the user failed: {reason(exc)}")
        problems.append("DELETE of the user blocked by " + ", ".join(f"{n} ({t})" for n, t in sorted(blocking.items())))
        try:  # those rows removed by hand, does the rest cascade?
            with savepoint(conn), conn.cursor() as cur:
                for table in sorted(set(blocking.values())):
                    cur.execute(sql.SQL("DELETE FROM public.{} WHERE user_id = %s").format(sql.Identifier(table)),
                                (p.user_id,))
                cur.execute(delete, (p.user_id,))
        except psycopg.Error:
            return ProbeResult(False, "; ".join(filter(None, [*problems, skipped])))
    except psycopg.Error as exc:
        return ProbeResult(False, f"deleting the user failed: {reason(exc)}")
    survivors = [f"{t} ({n})" for t in probed if (n := p.count(t))]
    if survivors:
        problems.append(f"{len(survivors)} tables kept the deleted user's rows: {', '.join(survivors)}")
    if problems:
        return ProbeResult(False, "; ".join(filter(None, [*problems, skipped])))
    return ProbeResult(True, "; ".join(filter(None, [f"{len(probed)} tables probed, all children removed", skipped])))


def unique(conn: psycopg.Connection[Any], schema: Schema, columns: dict[str, list[Column]]) -> ProbeResult:
    """The same (user, day, category) inserted twice into daily_plan, and with category NULL twice."""
    with conn.cursor() as cur:
        require(cur, {"users": "INSERT", "daily_plan": "INSERT"})
    p = Prober(conn, schema, columns)
    user = _uuid(p.make_user())
    passed, outcomes, rejected_by = True, [], set()
    for label, category in (("a duplicate (user, date, category)", sql.Literal(PROBE_TEXT)),
                            ("a duplicate with category NULL", sql.SQL("NULL"))):
        row = {"user_id": user, "date": sql.SQL(UTC_DAY), "category": category}
        try:
            with savepoint(conn):
                p.insert("daily_plan", row)
        except (psycopg.Error, LookupError) as exc:
            why = reason(exc) if isinstance(exc, psycopg.Error) else str(exc)
            raise ProbeError(f"cannot probe: inserting a daily_plan row failed: {why}") from None
        try:
            with savepoint(conn):
                p.insert("daily_plan", row)
            passed = False
            outcomes.append(f"{label} was accepted")
        except psycopg.errors.UniqueViolation as exc:
            rejected_by.add(exc.diag.constraint_name or "?")
            outcomes.append(f"{label} rejected by {exc.diag.constraint_name}")
        except psycopg.Error as exc:
            passed = False
            outcomes.append(f"{label} failed otherwise: {reason(exc)}")
    if passed and len(rejected_by) == 1:
        return ProbeResult(True, f"duplicate inserts rejected by {rejected_by.pop()}, with category NULL too")
    return ProbeResult(passed, "; ".join(outcomes))


def _number(value: Any) -> str:
    return str(int(value)) if value == int(value) else str(value)


def spent_trigger(conn: psycopg.Connection[Any], schema: Schema, columns: dict[str, list[Column]]) -> ProbeResult:
    """A transaction inserted, updated, soft-deleted, undeleted and deleted: its plan row must follow."""
    with conn.cursor() as cur:
        require(cur, {"users": "INSERT", "transactions": "INSERT,UPDATE,DELETE", "daily_plan": "SELECT"})
    p = Prober(conn, schema, columns)
    user = p.make_user()
    try:
        with savepoint(conn):
            row = p.insert("transactions", {"user_id": _uuid(user), "amount": sql.Literal(10),
                                            "category": sql.Literal(PROBE_TEXT), "spent_at": sql.SQL("now()"),
                                            **({"deleted_at": sql.SQL("NULL")} if schema.has("transactions.deleted_at")
                                               else {})})
    except (psycopg.Error, LookupError) as exc:
        why = reason(exc) if isinstance(exc, psycopg.Error) else str(exc)
        return ProbeResult(False, f"inserting a transaction failed: {why}")
    steps: list[tuple[str, str | None, int]] = [
        ("insert", None, 10), ("update", "SET amount = 25", 25), ("soft delete", "SET deleted_at = now()", 0),
        ("undelete", "SET deleted_at = NULL", 25), ("delete", "DELETE", 0)]
    if not schema.has("transactions.deleted_at"):
        steps = [s for s in steps if s[0] not in ("soft delete", "undelete")]
    seen, wrong = [], []
    for label, change, expected in steps:
        try:
            with savepoint(conn), conn.cursor() as cur:
                if change == "DELETE":
                    cur.execute("DELETE FROM public.transactions WHERE id = %s", (row["id"],))
                elif change:
                    cur.execute(f"UPDATE public.transactions {change} WHERE id = %s", (row["id"],))
                cur.execute(f"SELECT coalesce(sum(spent_amount), 0) FROM public.daily_plan WHERE user_id = %s "
                            f"AND category = %s AND date = {UTC_DAY}", (user, PROBE_TEXT))
                got = (cur.fetchone() or (0,))[0]
        except psycopg.Error as exc:
            return ProbeResult(False, f"{label} of a transaction failed: {reason(exc)}")
        seen.append(f"{label} {_number(got)}")
        if got != expected:
            wrong.append(f"after {label} spent_amount is {_number(got)}, expected {expected}")
    if wrong:
        return ProbeResult(False, "; ".join(wrong))
    return ProbeResult(True, ", ".join(seen) + " (as expected)")
