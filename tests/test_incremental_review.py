"""Issue 19, hostile review: cases where `check --incremental` could give what a full check would not."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mita_integrity import incremental
from mita_integrity.check import CheckRequest, run_check
from mita_integrity.connection import Database

from .test_incremental import how, outcome, recorded, same_as_full, seed, sql


@pytest.fixture
def dirty(baseline_db: Database) -> Database:
    seed(baseline_db, users=60, days=8, seed=3, corrupt=True)
    return baseline_db


def burn_xids(db: Database, n: int) -> None:
    """Other sessions' transactions: the server hands out n transaction ids."""
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        for _ in range(n):
            conn.execute("SELECT txid_current()")


def test_the_second_connection_counts_ages_from_its_own_point_and_must_not_miss_a_change(
        dirty: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """age() counts from a point fixed at a transaction's first call: the helper's point is later than the main
    connection's when other sessions wrote in between, so a window measured on one connection is too small on
    the other, and a row written just after the base looked unchanged there."""
    recorded(dirty)
    for table in ("transactions", "daily_plan", "goals", "users"):  # whichever connection scans which table
        sql(dirty, f"UPDATE {table} SET id = id WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT 1)")
    sql(dirty, "UPDATE transactions SET amount = -amount - 1 WHERE id IN "
               "(SELECT id FROM transactions WHERE amount > 0 ORDER BY id LIMIT 5)")
    sql(dirty, "UPDATE daily_plan SET spent_amount = spent_amount + 7 WHERE id IN "
               "(SELECT id FROM daily_plan ORDER BY id LIMIT 5)")
    window = incremental._window

    def busy(cur: Any, base_xmin: int) -> int:  # a busy server: other sessions take ids meanwhile
        out = window(cur, base_xmin)
        burn_xids(dirty, 40)
        return out

    monkeypatch.setattr(incremental, "_window", busy)
    inc = run_check(dirty, CheckRequest(incremental=True))  # two connections
    full = run_check(dirty, CheckRequest(parallel=False))
    assert inc.mode == "incremental"
    assert {p.connection for p in inc.passes if p.name.startswith("changes:")} == {1, 2}
    assert outcome(inc) == outcome(full), {k: (v, outcome(full).get(k)) for k, v in outcome(inc).items()
                                           if outcome(full).get(k) != v}
