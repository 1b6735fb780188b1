"""Review 19's attacks on check --incremental's keyed re-read (BUD001, BUD002, DUP002, DUP003 by the keys a
change touched), the row rules' base violators kept unread, and USR003 without the users of new transactions.
Every case compares the incremental check with a full one on the same state (one connection and two)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
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


def psycopg_connect(db: Database) -> psycopg.Connection[Any]:
    return psycopg.connect(autocommit=True, **db.connect_kwargs())


def both_as_full(db: Database, *incremental: str, **options: Any) -> None:
    """Incremental on one connection and on two, each compared with a full check on the same state; the rules
    named (code:table) read incrementally in both."""
    one = same_as_full(db, **options)
    inc = run_check(db, CheckRequest(incremental=True, **options))
    full = run_check(db, CheckRequest(parallel=False, **options))
    assert outcome(inc) == outcome(full), {
        k: (v, outcome(full).get(k)) for k, v in outcome(inc).items() if outcome(full).get(k) != v}
    for key in incremental:
        assert how(one)[key] == how(inc)[key] == ("incremental", None), (key, how(one)[key], how(inc)[key])


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


def test_usr003_a_last_transaction_soft_deleted_in_an_inheritance_child(logged: Database) -> None:
    """An UPDATE of a child table fires the child's triggers only: the parent's log misses it. With a row
    inserted and updated since (logged, not a base row), the log's count still covers the rows lost."""
    sql(logged, "CREATE TABLE transactions_archive () INHERITS (transactions)")
    user = new_user(logged, LAST)
    sql(logged, "UPDATE users SET has_onboarded = true, monthly_income = 1, annual_income = 12 WHERE id = %s",
        (user,))
    sql(logged, "INSERT INTO transactions_archive (id, user_id, category, amount, spent_at) "
                "VALUES (gen_random_uuid(), %s, 'food', 5, now() - interval '40 days')", (user,))
    recorded(logged)
    [(other,)] = sql(logged, "SELECT id FROM users WHERE id <> %s ORDER BY id LIMIT 1", (user,))
    [(new,)] = sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                           "VALUES (gen_random_uuid(), %s, 'food', 5, now()) RETURNING id", (other,))
    sql(logged, "UPDATE transactions SET amount = 6 WHERE id = %s", (new,))  # logged
    sql(logged, "UPDATE transactions_archive SET deleted_at = now() WHERE user_id = %s", (user,))  # not logged
    both_as_full(logged)  # a table with an inheritance child is not one the base reads: its rules run in full
    assert how(same_as_full(logged))["USR003:users"][0] == "full"


def test_rows_moved_between_the_halves_of_users(logged: Database) -> None:
    """Two connections: a transaction and a plan row moved from the first user to the last and back; the old
    key in one half, the new in the other."""
    recorded(logged)
    [(first,), (last,)] = sql(logged, "(SELECT id FROM users ORDER BY id LIMIT 1) UNION ALL "
                                      "(SELECT id FROM users ORDER BY id DESC LIMIT 1)")
    for a, b in ((first, last), (last, first)):
        sql(logged, "UPDATE transactions SET user_id = %s WHERE id = (SELECT id FROM transactions WHERE user_id = %s "
                    "AND deleted_at IS NULL ORDER BY id LIMIT 1)", (b, a))
        sql(logged, "UPDATE daily_plan SET user_id = %s WHERE id = (SELECT id FROM daily_plan WHERE user_id = %s "
                    "ORDER BY id LIMIT 1)", (b, a))
    both_as_full(logged)
    inc = run_check(logged, CheckRequest(incremental=True))
    for key in ("BUD001:daily_plan", "BUD002:transactions", "DUP002:daily_plan", "DUP003:transactions"):
        assert how(inc)[key] == ("incremental", None), key


def test_usr003_users_losing_and_gaining_their_last_transaction(logged: Database) -> None:
    """USR003 no longer reads the users of the transactions written since: each way a user loses its last live
    transaction (moved away, hard-deleted, soft-deleted) is in the log; gaining one only ends a violation."""
    users = [new_user(logged, f"0000000{i}-0000-0000-0000-000000000000") for i in range(5)]
    sql(logged, "UPDATE users SET has_onboarded = true, monthly_income = 1, annual_income = 12 WHERE id = ANY(%s)",
        (users,))
    for user in users[:4]:
        sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                    "VALUES (gen_random_uuid(), %s, 'food', 5, now() - interval '3 days')", (user,))
    recorded(logged)  # users[4] a violator
    sql(logged, "UPDATE transactions SET user_id = %s WHERE user_id = %s", (users[4], users[0]))  # moved
    sql(logged, "DELETE FROM transactions WHERE user_id = %s", (users[1],))
    sql(logged, "UPDATE transactions SET deleted_at = now() WHERE user_id = %s", (users[2],))
    sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "  # a second, then the first gone
                "VALUES (gen_random_uuid(), %s, 'food', 5, now())", (users[3],))
    sql(logged, "DELETE FROM transactions WHERE user_id = %s AND spent_at < now() - interval '1 day'", (users[3],))
    both_as_full(logged)
    assert how(same_as_full(logged))["USR003:users"] == ("incremental", None)
    violators = {r[0] for r in sql(logged, "SELECT u.id::text FROM users u WHERE u.id = ANY(%s) AND NOT EXISTS "
                                           "(SELECT 1 FROM transactions x WHERE x.user_id = u.id "
                                           "AND x.deleted_at IS NULL)", (users,))}
    assert violators == {users[0], users[1], users[2]}


def test_keys_touched_only_by_a_soft_delete_or_an_undelete(logged: Database) -> None:
    """BUD001's total and DUP003's group change by deleted_at alone (an UPDATE of no key column)."""
    recorded(logged)
    [(tid, user, category, amount, spent_at)] = sql(
        logged, "SELECT id, user_id, category, amount, spent_at FROM transactions WHERE deleted_at IS NULL "
                "AND user_id IS NOT NULL AND spent_at > now() - interval '3 days' ORDER BY id LIMIT 1")
    sql(logged, "UPDATE transactions SET deleted_at = now() WHERE id = %s", (tid,))
    [(dead,)] = sql(logged, "SELECT id FROM transactions WHERE deleted_at IS NOT NULL AND id <> %s "
                            "AND spent_at IS NOT NULL ORDER BY id LIMIT 1", (tid,))
    sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at, deleted_at) "
                "SELECT gen_random_uuid(), user_id, category, amount, spent_at, NULL FROM transactions "
                "WHERE id = %s", (dead,))
    sql(logged, "UPDATE transactions SET deleted_at = NULL WHERE id = %s", (dead,))  # undeleted: a duplicate
    both_as_full(logged, "BUD001:daily_plan", "BUD002:transactions", "DUP003:transactions", "SDL001:transactions")


def test_plan_duplicates_off_midnight_inserted_as_a_replica(logged: Database) -> None:
    """A pre-0023 plan row at 14:30 duplicating a midnight one, inserted under session_replication_role =
    replica (no ordinary trigger fires), and categories differing only in case or trailing spaces."""
    recorded(logged)
    [(user, date, category)] = sql(logged, "SELECT user_id, date, category FROM daily_plan WHERE user_id IS NOT NULL "
                                          "AND category IS NOT NULL ORDER BY id LIMIT 1")
    with psycopg_connect(logged) as conn:
        conn.execute("SET session_replication_role = replica")
        for when, cat in ((date + timedelta(hours=14, minutes=30), category), (date, category.upper()),
                          (date, category + " ")):
            conn.execute("INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                         "VALUES (gen_random_uuid(), %s, %s, %s, 1, 0)", (user, when, cat))
    [(tx_user, tx_cat, amount, spent_at)] = sql(
        logged, "SELECT user_id, category, amount, spent_at FROM transactions WHERE deleted_at IS NULL AND "
                "user_id IS NOT NULL AND category IS NOT NULL AND spent_at IS NOT NULL ORDER BY id DESC LIMIT 1")
    for cat in (tx_cat.upper(), tx_cat + " ", tx_cat):  # two near misses and one duplicate
        sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                    "VALUES (gen_random_uuid(), %s, %s, %s, %s)", (tx_user, cat, amount, spent_at))
    both_as_full(logged, "DUP002:daily_plan", "DUP003:transactions", "BUD001:daily_plan", "CAL001:daily_plan")


@pytest.mark.parametrize("boundary", ["utc", "user-timezone"])
def test_duplicates_on_both_sides_of_midnight(logged: Database, boundary: str) -> None:
    """Rows a microsecond either side of UTC midnight (another second, another day) and two in the same second
    at 23:59:59 UTC, of a user whose zone puts them on another day."""
    user = new_user(logged, LAST)
    sql(logged, "UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = %s", (user,))
    recorded(logged, day_boundary=boundary)
    for when in ("2026-01-01 23:59:59.999999+00", "2026-01-02 00:00:00+00", "2026-01-01 23:59:59.1+00",
                 "2026-01-01 23:59:59.2+00"):
        sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                    "VALUES (gen_random_uuid(), %s, 'food', 5, %s)", (user, when))
    both_as_full(logged, "DUP003:transactions", day_boundary=boundary)


def test_writes_committed_during_the_check_are_not_seen_by_any_of_its_reads(logged: Database,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The changes scan, the keys, their reads (two connections) and the row rules' re-read share one snapshot:
    writes committed between them (a duplicate, a deleted base violator, a new violator) change nothing."""
    from mita_integrity.check.incremental import runner as incremental
    from mita_integrity.check.incremental import touched_keys as incremental_keys

    recorded(logged)
    sql(logged, "UPDATE transactions SET amount = amount + 1 WHERE id = (SELECT id FROM transactions "
                "WHERE deleted_at IS NULL ORDER BY id LIMIT 1)")
    before = outcome(run_check(logged, CheckRequest(parallel=False)))
    written = []

    def write() -> None:
        if written:
            return
        written.append(True)
        sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) SELECT gen_random_uuid(), "
                    "user_id, category, amount, spent_at FROM transactions WHERE deleted_at IS NULL "
                    "AND spent_at IS NOT NULL ORDER BY id DESC LIMIT 3")
        sql(logged, "DELETE FROM transactions WHERE deleted_at IS NOT NULL")
        sql(logged, "UPDATE transactions SET amount = -5, category = 'food' WHERE id IN (SELECT id FROM transactions "
                    "WHERE deleted_at IS NULL ORDER BY id DESC LIMIT 2)")
        sql(logged, "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                    "SELECT gen_random_uuid(), user_id, date, category, 1, 0 FROM daily_plan ORDER BY id LIMIT 2")

    for module, name in ((incremental_keys, "affected"), (incremental_keys, "evaluate"),
                         (incremental, "_restricted")):
        original = getattr(module, name)

        def hooked(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            write()
            return _original(*args, **kwargs)
        monkeypatch.setattr(module, name, hooked)
    for parallel in (False, True):
        written.clear()
        inc = run_check(logged, CheckRequest(incremental=True, parallel=parallel))
        assert written
        assert outcome(inc) == before, {k: (v, before.get(k)) for k, v in outcome(inc).items() if before.get(k) != v}
        assert how(inc)["DUP003:transactions"] == ("incremental", None)
        before = outcome(run_check(logged, CheckRequest(parallel=False)))  # the writes now seen


def test_rows_written_by_a_transaction_in_flight_at_the_base(logged: Database) -> None:
    """A writer open while the base is recorded, committed after: a base violator mended, another hard-deleted,
    a row updated twice (a HOT update), a duplicate made; its rows are written since, its old keys logged."""
    with psycopg.connect(**logged.connect_kwargs()) as writer:
        writer.execute("UPDATE transactions SET amount = 4 WHERE id = (SELECT id FROM transactions WHERE amount < 0 "
                       "AND deleted_at IS NULL ORDER BY id LIMIT 1)")
        writer.execute("DELETE FROM transactions WHERE id = (SELECT id FROM transactions WHERE deleted_at IS NOT NULL "
                       "ORDER BY id LIMIT 1)")
        writer.execute("UPDATE transactions SET amount = 0 WHERE id = (SELECT id FROM transactions "
                       "WHERE deleted_at IS NULL AND amount > 0 ORDER BY id DESC LIMIT 1)")
        writer.execute("UPDATE transactions SET amount = 7 WHERE id = (SELECT id FROM transactions "
                       "WHERE deleted_at IS NULL AND amount = 0 ORDER BY id DESC LIMIT 1)")
        writer.execute("INSERT INTO transactions (id, user_id, category, amount, spent_at) SELECT gen_random_uuid(), "
                       "user_id, category, amount, spent_at FROM transactions WHERE deleted_at IS NULL "
                       "AND spent_at IS NOT NULL ORDER BY id LIMIT 1")
        recorded(logged)
        writer.commit()
    both_as_full(logged, "AMT003:transactions", "SDL001:transactions", "AMT002:transactions",
                 "DUP003:transactions", "BUD001:daily_plan")


@pytest.mark.parametrize("log", [False, True])
def test_a_base_violator_updated_twice_mended_then_broken_again(baseline_db: Database, log: bool) -> None:
    """Two HOT updates of one row: the base violator's version is gone (lost), the newest is the changed one;
    with the log (its id logged) and without (every base violator read again)."""
    seed(baseline_db, users=30, days=5, seed=7, corrupt=True)
    if log:
        install_log(baseline_db)
    logged = baseline_db
    recorded(logged)
    [(tid,)] = sql(logged, "SELECT id FROM transactions WHERE amount < 0 AND deleted_at IS NULL AND "
                           "coalesce(lower(category), '') NOT IN ('income', 'refund', 'transfer') ORDER BY id LIMIT 1")
    sql(logged, "UPDATE transactions SET amount = 4 WHERE id = %s", (tid,))
    sql(logged, "UPDATE transactions SET amount = -4 WHERE id = %s", (tid,))
    [(other,)] = sql(logged, "SELECT id FROM transactions WHERE amount > 0 AND deleted_at IS NULL "
                             "AND coalesce(lower(category), '') NOT IN ('income', 'refund', 'transfer') "
                             "ORDER BY id LIMIT 1")  # broken, then mended
    sql(logged, "UPDATE transactions SET amount = -4 WHERE id = %s", (other,))
    sql(logged, "UPDATE transactions SET amount = 4 WHERE id = %s", (other,))
    both_as_full(logged, "AMT003:transactions")


def test_a_goals_table_without_a_primary_key(logged: Database) -> None:
    """No primary key: the base names no row; the goals' row rules run in full, the others stay incremental."""
    [(name,)] = sql(logged, "SELECT conname FROM pg_constraint WHERE conrelid = 'goals'::regclass AND contype = 'p'")
    sql(logged, f'ALTER TABLE goals DROP CONSTRAINT "{name}" CASCADE')
    recorded(logged)
    sql(logged, "UPDATE goals SET saved_amount = -1 WHERE ctid = (SELECT min(ctid) FROM goals)")
    sql(logged, "DELETE FROM goals WHERE ctid = (SELECT max(ctid) FROM goals)")
    both_as_full(logged)


def test_a_parent_changed_only_in_a_column_no_rule_reads(logged: Database) -> None:
    """users updated in e-mail alone (and no user deleted): the orphan rules re-read their base violators."""
    recorded(logged)
    sql(logged, "UPDATE users SET email = 'x' || email WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1)")
    sql(logged, "DELETE FROM transactions WHERE id = (SELECT t.id FROM transactions t LEFT JOIN users u "
                "ON u.id = t.user_id WHERE u.id IS NULL AND t.user_id IS NOT NULL ORDER BY t.id LIMIT 1)")
    both_as_full(logged)


@pytest.mark.parametrize("boundary", ["utc", "user-timezone"])
def test_null_users_and_categories_in_both_tables(logged: Database, boundary: str) -> None:
    """Keys with a NULL user_id or category (read by joins of their own, matched as values): duplicates made
    and ended, plan rows of no user, and a user's zone changed (DUP002 and DUP003 stay per whole user)."""
    for table in ("transactions", "daily_plan"):
        for column in ("user_id", "category"):
            sql(logged, f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")
    recorded(logged, day_boundary=boundary)
    for user, category in ((None, "food"), (None, None), (LAST, None)):
        if user == LAST:
            new_user(logged, LAST)
        for _ in range(2):
            sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                        "VALUES (gen_random_uuid(), %s, %s, 5, date_trunc('second', now()) - interval '1 day')",
                (user, category))
            sql(logged, "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                        "VALUES (gen_random_uuid(), %s, date_trunc('day', now() AT TIME ZONE 'UTC') "
                        "AT TIME ZONE 'UTC', %s, 1, 0)", (user, category))
    sql(logged, "DELETE FROM transactions WHERE id = (SELECT id FROM transactions WHERE user_id IS NULL "
                "AND spent_at < now() - interval '2 days' ORDER BY id LIMIT 1)")
    sql(logged, "UPDATE users SET timezone = 'Pacific/Kiritimati' WHERE id = (SELECT id FROM users ORDER BY id "
                "LIMIT 1)")
    both_as_full(logged, "DUP002:daily_plan", "DUP003:transactions", day_boundary=boundary)


@pytest.mark.parametrize("when", ["infinity", "0044-03-15 12:00:00+00 BC"])
def test_a_base_violating_key_on_a_day_python_cannot_read(logged: Database, when: str) -> None:
    """BUD002's base keeps the violating key of a row spent at infinity (or before Christ): its day, "infinity"
    in the base's JSON, is no ISO date; the check must still give the full check's results."""
    user, category, _ = a_transaction(logged)
    sql(logged, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                "VALUES (gen_random_uuid(), %s, %s, 'NaN', %s)", (user, category, when))
    recorded(logged)
    sql(logged, "UPDATE transactions SET amount = amount + 1 WHERE id = (SELECT id FROM transactions "
                "WHERE deleted_at IS NULL AND spent_at > now() - interval '2 days' ORDER BY id LIMIT 1)")
    both_as_full(logged)
    mode, reason = how(same_as_full(logged))["BUD002:transactions"]
    assert mode == "full" and reason and "incremental query failed" in reason, reason


@pytest.mark.parametrize("log", [False, True])
def test_a_young_base_violator_when_no_row_was_written_since(baseline_db: Database, log: bool) -> None:
    """A row made a violator just before the base while an older writer was in flight (its xmin is young: the
    base saw it), then only a DELETE since: no row written since (changed 0), one base row lost. The young
    violator must be read again (it is inside the window, so the base violators' read skipped it as changed),
    and the log's entry for it (its txid is past the base's xmin) does not mean it left."""
    seed(baseline_db, users=30, days=5, seed=7, corrupt=True)
    if log:
        install_log(baseline_db)
    with psycopg.connect(**baseline_db.connect_kwargs()) as older:
        older.execute("SELECT txid_current()")  # in flight: holds the base's xmin back
        sql(baseline_db, "UPDATE transactions SET amount = -5 WHERE id = (SELECT id FROM transactions WHERE amount > 0 "
                         "AND deleted_at IS NULL AND coalesce(lower(category), '') NOT IN ('income', 'refund', "
                         "'transfer') ORDER BY id LIMIT 1)")
        recorded(baseline_db)
    sql(baseline_db, "DELETE FROM transactions WHERE id = (SELECT id FROM transactions WHERE amount > 0 "
                     "AND deleted_at IS NULL ORDER BY id DESC LIMIT 1)")
    both_as_full(baseline_db, "AMT003:transactions")
