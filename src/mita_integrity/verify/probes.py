"""`verify`'s probes: writes that prove a constraint or a trigger works, each inside one transaction that is
always rolled back.

A probe inserts a throw-away user and rows built generically from the catalog (every NOT NULL column
without a default gets a value of its type), under SAVEPOINTs so one rejected row does not abort the
rest. The caller (verify.probe) opens the transaction, sets its timeouts and rolls it back whatever
happens; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ..check.rules.context import Schema
from ..database.connection import CATALOG_SEARCH_PATH
from .probe_rows import PROBE_TEXT, UTC_DAY, Column, ProbeError, Prober, reason, require, savepoint


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
                # The write above fires the application's triggers under public; the reading is the tool's own,
                # under the catalog alone (`public.=(varchar, varchar)` must not choose the plan row).
                cur.execute(f"SET LOCAL search_path = {CATALOG_SEARCH_PATH}")
                cur.execute(f"SELECT coalesce(sum(spent_amount), 0) FROM public.daily_plan WHERE user_id = %s "
                            f"AND category = %s AND date = {UTC_DAY}", (user, PROBE_TEXT))
                got = (cur.fetchone() or (0,))[0]
                cur.execute("SET LOCAL search_path = public")
        except psycopg.Error as exc:
            return ProbeResult(False, f"{label} of a transaction failed: {reason(exc)}")
        seen.append(f"{label} {_number(got)}")
        if got != expected:
            wrong.append(f"after {label} spent_amount is {_number(got)}, expected {expected}")
    if wrong:
        return ProbeResult(False, "; ".join(wrong))
    return ProbeResult(True, ", ".join(seen) + " (as expected)")
