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


def new_user(db: Database, user: str) -> str:
    sql(db, "INSERT INTO users (id, email, password_hash, has_onboarded) VALUES (%s, %s, 'h', false)",
        (user, f"{user}@example.com"))
    return user


FIRST, LAST = "00000000-0000-0000-0000-000000000001", "ffffffff-ffff-ffff-ffff-ffffffffffff"


@pytest.mark.parametrize("user", [FIRST, LAST])
def test_duplicate_plan_rows_without_a_date(logged: Database, user: str) -> None:
    """A hostile daily_plan.date that allows NULL: the full DUP002 groups NULL days as one key. Its user the
    first of the keys (the read took `dated` from the first key) or the last (a NULL day matched no row)."""
    sql(logged, "ALTER TABLE daily_plan ALTER COLUMN date DROP NOT NULL")
    recorded(logged)
    new_user(logged, user)
    for _ in range(2):
        sql(logged, "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                    "VALUES (gen_random_uuid(), %s, NULL, 'food', 1, 0)", (user,))
    both_as_full(logged)
    assert how(same_as_full(logged))["DUP002:daily_plan"] == ("incremental", None)


def test_a_transaction_without_spent_at_first_among_the_keys(logged: Database) -> None:
    """A changed transaction with a NULL spent_at gives a key without a day; first among the keys, it must not
    make the other keys read every day of their (user, category) (each row would be read once per key)."""
    recorded(logged)
    new_user(logged, FIRST)
    sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                "VALUES (gen_random_uuid(), %s, 'food', 5, NULL)", (FIRST,))
    second = new_user(logged, "00000000-0000-0000-0000-000000000002")
    for day in (1, 2):
        sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) VALUES "
                    "(gen_random_uuid(), %s, 'food', 'NaN', now() - make_interval(days => %s))", (second, day))
    both_as_full(logged)
    assert how(same_as_full(logged))["BUD002:transactions"] == ("incremental", None)


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


def test_base_duplicate_users_when_the_primary_key_is_not_id(logged: Database) -> None:
    """DUP001 keeps its groups' ids too (duplicates._ids); they are looked up as ids."""
    move_primary_key(logged, "users")
    recorded(logged)
    sql(logged, "INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), 'new19@example.com', 'h')")
    both_as_full(logged)
    assert how(same_as_full(logged))["DUP001:users"] == ("incremental", None)
