"""Review 19's attacks on check --incremental's keyed re-read (BUD001, BUD002, DUP002, DUP003 by the keys a
change touched), the row rules' base violators kept unread, and USR003 without the users of new transactions.
Every case compares the incremental check with a full one on the same state (one connection and two)."""

from __future__ import annotations

from typing import Any

import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database

from .test_incremental import how, outcome, recorded, same_as_full, seed, sql
from .test_incremental_changelog import install_log


@pytest.fixture
def logged(baseline_db: Database) -> Database:
    seed(baseline_db, users=30, days=5, seed=7, corrupt=True)
    install_log(baseline_db)
    return baseline_db


def both_as_full(db: Database, **options: Any) -> None:
    """Incremental on one connection and on two, each compared with a full check on the same state."""
    same_as_full(db, **options)
    inc = run_check(db, CheckRequest(incremental=True, **options))
    full = run_check(db, CheckRequest(parallel=False, **options))
    assert outcome(inc) == outcome(full), {
        k: (v, outcome(full).get(k)) for k, v in outcome(inc).items() if outcome(full).get(k) != v}


def a_transaction(db: Database) -> tuple[Any, ...]:
    [row] = sql(db, "SELECT user_id, category, amount FROM transactions WHERE user_id IS NOT NULL "
                    "AND category IS NOT NULL AND deleted_at IS NULL ORDER BY id LIMIT 1")
    return row


@pytest.mark.parametrize("when", ["infinity", "-infinity"])
def test_duplicate_transactions_at_an_infinite_time(logged: Database, when: str) -> None:
    """A key's day is infinite: the probe [day, day + 1) is empty there (infinity + 1 is infinity)."""
    recorded(logged)
    user, category, amount = a_transaction(logged)
    for _ in range(2):
        sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                    "VALUES (gen_random_uuid(), %s, %s, %s, %s)", (user, category, amount, when))
    both_as_full(logged)  # the changed rows' infinite day cannot be read into Python: the rules run in full
    assert how(same_as_full(logged))["DUP003:transactions"][0] == "full"


def test_duplicate_plan_rows_without_a_date(logged: Database) -> None:
    """A hostile daily_plan.date that allows NULL: the full DUP002 groups NULL days as one key."""
    sql(logged, "ALTER TABLE daily_plan ALTER COLUMN date DROP NOT NULL")
    recorded(logged)
    [(user,)] = sql(logged, "SELECT id FROM users ORDER BY id LIMIT 1")
    for _ in range(2):
        sql(logged, "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                    "VALUES (gen_random_uuid(), %s, NULL, 'food', 1, 0)", (user,))
    both_as_full(logged)


def move_primary_key(db: Database, table: str) -> None:
    """The table's primary key on another uuid column than id (id stays, unique and NOT NULL)."""
    sql(db, f"ALTER TABLE {table} ADD COLUMN ref uuid NOT NULL DEFAULT gen_random_uuid()")
    [(name,)] = sql(db, "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (table,))
    sql(db, f'ALTER TABLE {table} DROP CONSTRAINT "{name}" CASCADE')
    sql(db, f"ALTER TABLE {table} ADD PRIMARY KEY (ref)")
    sql(db, f"ALTER TABLE {table} ADD UNIQUE (id)")


@pytest.mark.parametrize("table", ["transactions", "daily_plan"])
def test_base_duplicate_groups_when_the_primary_key_is_not_id(logged: Database, table: str) -> None:
    """The base keeps DUP002's and DUP003's members as ids; they are looked up by the primary key."""
    move_primary_key(logged, table)
    recorded(logged)
    [(user,)] = sql(logged, "SELECT id FROM users ORDER BY id DESC LIMIT 1")
    sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                "VALUES (gen_random_uuid(), %s, 'misc', 3, now())", (user,))
    sql(logged, "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                "VALUES (gen_random_uuid(), %s, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "
                "'misc', 1, 0)", (user,))
    both_as_full(logged)


def test_row_rules_keep_base_violators_when_the_primary_key_is_not_id(logged: Database) -> None:
    """The change log names rows by id; the base's violators are named by the primary key."""
    move_primary_key(logged, "transactions")
    recorded(logged)
    sql(logged, "DELETE FROM transactions WHERE id = (SELECT id FROM transactions WHERE deleted_at IS NOT NULL "
                "ORDER BY id LIMIT 1)")
    sql(logged, "UPDATE transactions SET amount = 4 WHERE id = (SELECT id FROM transactions WHERE amount < 0 "
                "AND deleted_at IS NULL ORDER BY id LIMIT 1)")
    both_as_full(logged)
