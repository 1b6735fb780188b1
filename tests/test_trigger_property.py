"""Issue 14, "Done when": random writes through the 0027 trigger with the edge values, and zero drift.

Hypothesis drives inserts, edits of amount, category, day and user, soft deletes, undeletes, hard deletes
and a loss of spent_at, over categories that are long, end in spaces or are NULL, and amounts with three
decimals, NaN, negative refunds and zero. After every sequence the plan is compared with a model kept in
Python (what daily_plan can hold, decided independently of the tool's SQL) and BUD001 must be 0.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mita_integrity.database.connection import Database, connect

from .test_trigger import ANN, BOB, D1, D2, allow_null_category, assert_consistent, at, db, plan, sql

__all__ = ["db"]  # the fixture, re-exported for pytest

CATEGORIES = ("food", "food ", "x" * 99 + " ", "x" * 100, "x" * 100 + " ", "y" * 150, None)
AMOUNTS = tuple(Decimal(a) for a in ("0", "0.01", "2.50", "1.250", "0.005", "0.004", "3.333", "-4.00",
                                     "999999.99", "NaN"))
LIMIT = Decimal(10) ** 10


@dataclass
class Row:
    user: str
    day: date
    category: str | None
    amount: Decimal
    live: bool = True
    dated: bool = True


def fits(row: Row) -> bool:
    """daily_plan holds the row exactly: a finite amount of at most two decimals below 10^10, a category of
    at most 100 characters."""
    a = row.amount
    return (not a.is_nan() and abs(a) < LIMIT and a == a.quantize(Decimal("0.01"))
            and (row.category is None or len(row.category) <= 100))


def expected(rows: dict[str, Row]) -> dict[tuple[str, date, str | None], Decimal]:
    totals: dict[tuple[str, date, str | None], Decimal] = {}
    for row in rows.values():
        if row.live and row.dated and fits(row):
            key = (row.user, row.day, row.category)
            totals[key] = totals.get(key, Decimal(0)) + row.amount
    return totals


operation = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from((ANN, BOB)), st.sampled_from((D1, D2)),
              st.sampled_from(CATEGORIES), st.sampled_from(AMOUNTS)),
    st.tuples(st.just("amount"), st.integers(0, 50), st.sampled_from(AMOUNTS)),
    st.tuples(st.just("category"), st.integers(0, 50), st.sampled_from(CATEGORIES)),
    st.tuples(st.just("day"), st.integers(0, 50), st.sampled_from((D1, D2))),
    st.tuples(st.just("user"), st.integers(0, 50), st.sampled_from((ANN, BOB))),
    st.tuples(st.just("soft_delete"), st.integers(0, 50)),
    st.tuples(st.just("undelete"), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("undate"), st.integers(0, 50)),
)


def apply(conn: psycopg.Connection[Any], rows: dict[str, Row], op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "insert":
        _, user, day, category, amount = op
        tx = str(uuid.uuid4())
        conn.execute("INSERT INTO transactions (id, user_id, category, amount, spent_at) VALUES (%s, %s, %s, %s, %s)",
                     (tx, user, category, amount, at(day, "13:30")))
        rows[tx] = Row(user, day, category, amount)
        return
    if not rows:
        return
    tx = sorted(rows)[op[1] % len(rows)]
    row = rows[tx]
    if kind == "amount":
        conn.execute("UPDATE transactions SET amount = %s WHERE id = %s", (op[2], tx))
        row.amount = op[2]
    elif kind == "category":
        conn.execute("UPDATE transactions SET category = %s WHERE id = %s", (op[2], tx))
        row.category = op[2]
    elif kind == "day":
        conn.execute("UPDATE transactions SET spent_at = %s WHERE id = %s", (at(op[2], "23:59:59"), tx))
        row.day, row.dated = op[2], True
    elif kind == "user":
        conn.execute("UPDATE transactions SET user_id = %s WHERE id = %s", (op[2], tx))
        row.user = op[2]
    elif kind == "soft_delete":
        conn.execute("UPDATE transactions SET deleted_at = now() WHERE id = %s", (tx,))
        row.live = False
    elif kind == "undelete":
        conn.execute("UPDATE transactions SET deleted_at = NULL WHERE id = %s", (tx,))
        row.live = True
    elif kind == "delete":
        conn.execute("DELETE FROM transactions WHERE id = %s", (tx,))
        del rows[tx]
    elif kind == "undate":
        conn.execute("UPDATE transactions SET spent_at = NULL WHERE id = %s", (tx,))
        row.dated = False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_random_writes_with_edge_values_never_drift(db: Database, ops: list[tuple[Any, ...]]) -> None:
    allow_null_category(db)
    sql(db, "DELETE FROM transactions; DELETE FROM daily_plan")
    rows: dict[str, Row] = {}
    with connect(db, autocommit=True) as conn:
        for op in ops:
            apply(conn, rows, op)  # every write succeeds: none may fail because of the trigger
    model = expected(rows)
    stored = plan(db)
    for key, total in model.items():
        assert stored.get(key) == total, (key, stored.get(key), total)
    for key, spent in stored.items():  # a plan row whose spending all went away holds 0
        assert key in model or spent == 0, (key, spent)
    assert_consistent(db)
