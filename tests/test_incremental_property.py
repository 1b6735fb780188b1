"""Issue 19, item 4: after any mixture of writes, `check --incremental` equals a full check result for result.

Hypothesis applies inserts, updates (amounts, categories, days, users, e-mails, goals), soft and hard
deletes, new defects (orphans, duplicates, negative amounts, plan drift, writes as a replica bypassing the
trigger) to a seeded database, with and without the 0025 trigger, with and without the change log of old
keys (changelog install); before each mixture a check is recorded
(full or incremental: both are bases), after it the incremental check must agree with a full one on every
result's status, count and groups.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mita_integrity.database.connection import Database

from .test_incremental import delete_user, how, recorded, same_as_full, seed, sql

TX_COLUMNS = "user_id, category, amount, spent_at, currency, created_at, updated_at"


def _pick(conn: psycopg.Connection[Any], table: str, k: int, where: str = "true") -> Any:
    row = conn.execute(f"SELECT id FROM {table} WHERE {where} ORDER BY id OFFSET "
                       f"(%s %% greatest((SELECT count(*) FROM {table} WHERE {where}), 1)) LIMIT 1", (k,)).fetchone()
    return row[0] if row else None


def apply(db: Database, op: tuple[str, int, int]) -> None:
    kind, k, v = op
    amount = (0, -7, 12.5, 2_000_000, 3)[v % 5]
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        if kind == "replica":
            conn.execute("SET session_replication_role = replica")
        tx = _pick(conn, "transactions", k)
        try:
            if kind == "insert":
                user = _pick(conn, "users", v)
                conn.execute(f"INSERT INTO transactions (id, {TX_COLUMNS}) VALUES (gen_random_uuid(), %s, %s, %s, "
                             "now() - make_interval(days => %s), 'USD', now(), now())",
                             (user, ("food", "income", "travel")[v % 3], amount, v % 9))
            elif kind == "orphan":
                conn.execute(f"INSERT INTO transactions (id, {TX_COLUMNS}) VALUES (gen_random_uuid(), "
                             "gen_random_uuid(), 'food', 5, now(), 'USD', now(), now())")
            elif kind == "duplicate":
                conn.execute(f"INSERT INTO transactions (id, {TX_COLUMNS}) SELECT gen_random_uuid(), {TX_COLUMNS} "
                             "FROM transactions WHERE id = %s", (tx,))
            elif kind in ("amount", "replica"):
                conn.execute("UPDATE transactions SET amount = %s WHERE id = %s", (amount, tx))
            elif kind == "day":
                conn.execute("UPDATE transactions SET spent_at = spent_at - make_interval(days => %s) WHERE id = %s",
                             (1 + v % 3, tx))
            elif kind == "category":
                conn.execute("UPDATE transactions SET category = %s WHERE id = %s", (("food", "gifts")[v % 2], tx))
            elif kind == "move_user":
                conn.execute("UPDATE transactions SET user_id = %s WHERE id = %s", (_pick(conn, "users", v), tx))
            elif kind == "soft_delete":
                conn.execute("UPDATE transactions SET deleted_at = now() WHERE id = %s", (tx,))
            elif kind == "undelete":
                conn.execute("UPDATE transactions SET deleted_at = NULL WHERE id = %s",
                             (_pick(conn, "transactions", k, "deleted_at IS NOT NULL"),))
            elif kind == "hard_delete":
                conn.execute("DELETE FROM transactions WHERE id = %s", (tx,))
            elif kind == "plan_drift":
                conn.execute("UPDATE daily_plan SET spent_amount = spent_amount + %s WHERE id = %s",
                             (1 + v % 4, _pick(conn, "daily_plan", k)))
            elif kind == "plan_delete":
                conn.execute("DELETE FROM daily_plan WHERE id = %s", (_pick(conn, "daily_plan", k),))
            elif kind == "plan_duplicate":
                conn.execute("INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                             "SELECT gen_random_uuid(), user_id, date, category, planned_amount, spent_amount "
                             "FROM daily_plan WHERE id = %s", (_pick(conn, "daily_plan", k),))
            elif kind == "user_delete":
                delete_user(db, _pick(conn, "users", k))
            elif kind == "user_email":
                other = _pick(conn, "users", v)
                conn.execute("UPDATE users SET email = (SELECT upper(email) FROM users WHERE id = %s) WHERE id = %s",
                             (other, _pick(conn, "users", k)))
            elif kind == "goal":
                conn.execute("UPDATE goals SET saved_amount = saved_amount + %s WHERE id = %s",
                             (amount, _pick(conn, "goals", k)))
            elif kind == "goal_delete":
                conn.execute("DELETE FROM goals WHERE id = %s", (_pick(conn, "goals", k),))
        except psycopg.Error:
            pass  # a write a constraint refuses (a unique key, a foreign key) changes nothing: the mixture goes on


KINDS = ("insert", "orphan", "duplicate", "amount", "replica", "day", "category", "move_user", "soft_delete",
         "undelete", "hard_delete", "plan_drift", "plan_delete", "plan_duplicate", "user_delete", "user_email",
         "goal", "goal_delete")
operation = st.tuples(st.sampled_from(KINDS), st.integers(0, 10_000), st.integers(0, 10_000))
mixture = st.tuples(st.booleans(), st.lists(operation, min_size=0, max_size=12))


@pytest.fixture(params=["no trigger", "trigger", "no trigger, change log", "trigger, change log"])
def seeded(baseline_db: Database, request: pytest.FixtureRequest) -> Database:
    if request.param.startswith("trigger"):
        from .test_trigger import install

        seed(baseline_db, users=40, days=6, seed=11)  # clean: 0025's unique key needs no duplicate plan rows
        install(baseline_db)
    else:
        seed(baseline_db, users=60, days=6, seed=11, corrupt=True)
    if request.param.endswith("change log"):  # BUD001, BUD002, USR003 then read only the keys a change touched
        from .test_incremental_changelog import install_log

        install_log(baseline_db)
    return baseline_db


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(mixture, min_size=1, max_size=2))
def test_incremental_equals_full_after_any_mixture(seeded: Database, steps: list[tuple[bool, list[Any]]]) -> None:
    logged = bool(sql(seeded, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'mita_integrity_log_%%'")[0][0])
    for incremental_base, ops in steps:
        recorded(seeded, incremental=incremental_base)
        for op in ops:
            apply(seeded, op)
        inc = same_as_full(seeded)
        if logged:  # the log proves itself in every mixture (replica writes too: its triggers fire ALWAYS)
            for key in ("BUD001:daily_plan", "BUD002:transactions", "USR003:users", "DUP003:transactions"):
                assert how(inc)[key] == ("incremental", None), how(inc)[key]
