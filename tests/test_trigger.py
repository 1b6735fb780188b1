"""Migration 0025's trigger: `update_daily_plan_spent()` keeps daily_plan.spent_amount equal to the sum of each
(user, UTC day, category)'s live transactions, by additive deltas, under concurrency, and lets a user be deleted.

Every test starts from an empty baseline database given 0023's precondition (the unique key) and the two SQL
files of 0025, as the migration will run them. A transaction counts when it is live (deleted_at IS NULL) and
has a spent_at; its key's plan row is (user_id, day at midnight UTC, category), NULL categories included.
The baseline has `transactions.category NOT NULL`; the tests about NULL categories drop that NOT NULL for
themselves (daily_plan.category is nullable, and the trigger must treat NULL as a key like any other).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

import mita_integrity
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.findings import Status

SQL_DIR = Path(mita_integrity.__file__).parent / "migrations" / "sql"
UP_SQL = SQL_DIR / "0025_daily_plan_spent_trigger.sql"
DOWN_SQL = SQL_DIR / "0025_daily_plan_spent_trigger_down.sql"
HEAD_SQL = SQL_DIR / "0027_harden_spent_trigger.sql"
UNIQUE_KEY = ("ALTER TABLE daily_plan ADD CONSTRAINT uq_daily_plan_user_date_category "
              "UNIQUE NULLS NOT DISTINCT (user_id, date, category)")

ANN = "00000000-0000-0000-0000-00000000000a"
BOB = "00000000-0000-0000-0000-00000000000b"
CAT = "00000000-0000-0000-0000-00000000000c"
DAN = "00000000-0000-0000-0000-00000000000d"
USERS = (ANN, BOB, CAT, DAN)

TODAY = datetime.now(UTC).date()
D1 = TODAY - timedelta(days=2)  # inside BUD001's window (the tests ask for 3650 days)
D2 = TODAY - timedelta(days=1)

Key = tuple[str, date, str | None]

# every plan row whose spent_amount differs from the sum of its key's counting transactions, and every key
# with counting transactions but no plan row: computed independently of the trigger and of BUD001. A row
# counts when daily_plan can hold it exactly (0027: a finite amount of at most two decimals below 10^10, a
# category of at most 100 characters); a key whose total numeric(12,2) cannot hold is left out.
MISMATCHES = """
WITH counted AS (
    SELECT user_id, (spent_at AT TIME ZONE 'UTC')::date AS day, category, sum(amount) AS total
      FROM transactions
     WHERE deleted_at IS NULL AND spent_at IS NOT NULL AND amount IS NOT NULL AND user_id IS NOT NULL
       AND amount <> 'NaN' AND amount > -1e10 AND amount < 1e10 AND amount * 100 = trunc(amount * 100)
       AND length(coalesce(category, '')) <= 100
     GROUP BY 1, 2, 3 HAVING sum(amount) > -1e10 AND sum(amount) < 1e10),
planned AS (
    SELECT user_id, (date AT TIME ZONE 'UTC')::date AS day, category, spent_amount FROM daily_plan)
SELECT count(*) FROM counted c FULL JOIN planned p
    ON p.user_id = c.user_id AND p.day = c.day AND p.category IS NOT DISTINCT FROM c.category
 WHERE p.user_id IS NULL OR coalesce(c.total, 0) <> coalesce(p.spent_amount, 0)"""


def sql(db: Database, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Runs one statement in autocommit; gives its rows (none for a statement without a result)."""
    with connect(db, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def install(db: Database, *, head: bool = True) -> None:
    """0023's precondition, then migration 0025's SQL file, as the migration executes it (one string), then
    0027's (the function a database at head runs; head=False keeps 0025's own)."""
    with connect(db) as conn:
        conn.execute(UNIQUE_KEY)
        conn.execute(UP_SQL.read_text(encoding="utf-8").encode())
        if head:
            conn.execute(HEAD_SQL.read_text(encoding="utf-8").encode())
        conn.commit()


def allow_null_category(db: Database) -> None:
    sql(db, "ALTER TABLE transactions ALTER COLUMN category DROP NOT NULL")


@pytest.fixture
def db(baseline_db: Database) -> Database:
    install(baseline_db)
    sql(baseline_db, "INSERT INTO users (id, email, password_hash) VALUES "
        + ", ".join(f"('{u}', 'user{i}@example.com', 'h')" for i, u in enumerate(USERS)))
    return baseline_db


def at(day: date, clock: str = "12:00") -> str:
    return f"{day.isoformat()} {clock}+00"


def add(db: Database, user: str, spent_at: str | None, category: str | None, amount: str,
        *, deleted: bool = False) -> str:
    """Inserts one transaction; gives its id."""
    tx = str(uuid.uuid4())
    sql(db, "INSERT INTO transactions (id, user_id, category, amount, spent_at, deleted_at) "
            "VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)",
        (tx, user, category, Decimal(amount), spent_at, deleted))
    return tx


def update(db: Database, tx: str, assignments: str, *params: Any) -> None:
    sql(db, f"UPDATE transactions SET {assignments} WHERE id = %s", (*params, tx))


def plan(db: Database) -> dict[Key, Decimal]:
    """Gives every plan row's spent_amount by (user, day, category)."""
    rows = sql(db, "SELECT user_id::text, (date AT TIME ZONE 'UTC')::date, category, spent_amount FROM daily_plan")
    keys = [(r[0], r[1], r[2]) for r in rows]
    assert len(keys) == len(set(keys)), "the unique key holds"
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def bud001(db: Database) -> int:
    report = run_check(db, CheckRequest(select=["BUD001"], budget_days=3650))
    result = next(r for r in report.results if r.code == "BUD001")
    assert result.status in (Status.PASS, Status.FAIL), result.reason
    return result.count


def assert_consistent(db: Database) -> None:
    """BUD001 is 0 and, checked independently, every plan row holds its key's sum (no key lacks its row)."""
    assert bud001(db) == 0
    assert sql(db, MISMATCHES) == [(0,)]


def d(value: str) -> Decimal:
    return Decimal(value)


# --- installation -----------------------------------------------------------------------------------------


def test_the_files_install_idempotently_and_the_down_file_removes_everything(baseline_db: Database) -> None:
    install(baseline_db, head=False)
    db = baseline_db
    sql(db, f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h')")
    with connect(db) as conn:  # a second run of the up file (an interrupted migration run again) is harmless
        conn.execute(UP_SQL.read_text(encoding="utf-8").encode())
        conn.commit()
    triggers = ("SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'transactions'::regclass "
                "AND tgname = 'trg_transactions_daily_plan_spent'")
    assert sql(db, triggers) == [("trg_transactions_daily_plan_spent", "O")]
    add(db, ANN, at(D1), "food", "5.00")
    assert plan(db) == {(ANN, D1, "food"): d("5.00")}

    for _ in range(2):  # the down file twice: IF EXISTS
        with connect(db) as conn:
            conn.execute(DOWN_SQL.read_text(encoding="utf-8").encode())
            conn.commit()
    assert sql(db, triggers) == []
    assert sql(db, "SELECT count(*) FROM pg_proc WHERE proname = 'update_daily_plan_spent'") == [(0,)]
    add(db, ANN, at(D1), "food", "1.00")  # no trigger: nothing moves, and BUD001 sees the drift
    assert plan(db) == {(ANN, D1, "food"): d("5.00")}
    assert bud001(db) == 1

    with connect(db) as conn:  # and up again
        conn.execute(UP_SQL.read_text(encoding="utf-8").encode())
        conn.commit()
    add(db, ANN, at(D1), "food", "2.00")
    assert plan(db) == {(ANN, D1, "food"): d("7.00")}


# --- one event at a time ----------------------------------------------------------------------------------


def test_insert_creates_the_missing_plan_row_with_planned_zero(db: Database) -> None:
    add(db, ANN, at(D1, "08:15"), "food", "12.50")
    rows = sql(db, "SELECT user_id::text, date, category, planned_amount, spent_amount, created_at IS NOT NULL "
                   "FROM daily_plan")
    assert rows == [(ANN, datetime(D1.year, D1.month, D1.day, tzinfo=UTC), "food", d("0.00"), d("12.50"), True)]
    assert_consistent(db)


def test_insert_adds_to_an_existing_plan_row_and_keeps_its_other_columns(db: Database) -> None:
    sql(db, "INSERT INTO daily_plan (user_id, date, category, planned_amount, spent_amount, daily_budget) "
            "VALUES (%s, %s, 'food', 40, 0, 30)", (ANN, at(D1, "00:00")))
    add(db, ANN, at(D1), "food", "12.50")
    add(db, ANN, at(D1, "23:59:59.999"), "food", "7.25")
    assert plan(db) == {(ANN, D1, "food"): d("19.75")}
    assert sql(db, "SELECT planned_amount, daily_budget, count(*) OVER () FROM daily_plan") == [
        (d("40.00"), d("30.00"), 1)]
    assert_consistent(db)


def test_insert_of_zero_still_gives_the_key_its_plan_row(db: Database) -> None:
    add(db, ANN, at(D1), "food", "0")
    assert plan(db) == {(ANN, D1, "food"): d("0")}
    assert_consistent(db)


def test_update_of_the_amount_applies_the_difference(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "10.00")
    add(db, ANN, at(D1), "food", "5.00")
    update(db, tx, "amount = %s", d("3.40"))
    assert plan(db) == {(ANN, D1, "food"): d("8.40")}
    update(db, tx, "amount = %s", d("25.00"))
    assert plan(db) == {(ANN, D1, "food"): d("30.00")}
    assert_consistent(db)


def test_update_of_the_category_moves_the_amount(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "10.00")
    add(db, ANN, at(D1), "food", "1.00")
    update(db, tx, "category = 'transport'")
    assert plan(db) == {(ANN, D1, "food"): d("1.00"), (ANN, D1, "transport"): d("10.00")}
    update(db, tx, "category = 'bills', amount = 4")  # both at once; 'bills' sorts first this time
    assert plan(db) == {(ANN, D1, "food"): d("1.00"), (ANN, D1, "transport"): d("0.00"),
                        (ANN, D1, "bills"): d("4.00")}
    assert_consistent(db)


def test_update_of_spent_at_across_midnight_utc_moves_the_amount_to_the_other_day(db: Database) -> None:
    tx = add(db, ANN, at(D1, "23:59:59.999999"), "food", "10.00")
    assert plan(db) == {(ANN, D1, "food"): d("10.00")}
    update(db, tx, "spent_at = spent_at + interval '1 microsecond'")  # 00:00 of D2
    assert plan(db) == {(ANN, D1, "food"): d("0.00"), (ANN, D2, "food"): d("10.00")}
    update(db, tx, "spent_at = %s", at(D2, "23:00"))  # later the same day: nothing moves
    assert plan(db) == {(ANN, D1, "food"): d("0.00"), (ANN, D2, "food"): d("10.00")}
    update(db, tx, "spent_at = %s", at(D1, "01:00"))  # back: the earlier day sorts first
    assert plan(db) == {(ANN, D1, "food"): d("10.00"), (ANN, D2, "food"): d("0.00")}
    assert_consistent(db)


def test_the_day_is_the_utc_day_whatever_the_session_time_zone(db: Database) -> None:
    with connect(db, autocommit=True) as conn:
        for zone in ("Pacific/Kiritimati", "America/Los_Angeles"):  # +14 and -8/-7
            conn.execute(f"SET TimeZone = '{zone}'")
            conn.execute("INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                         "VALUES (gen_random_uuid(), %s, 'food', 1, %s)", (ANN, at(D1, "23:30")))
            conn.execute("INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                         "VALUES (gen_random_uuid(), %s, 'food', 2, %s)", (ANN, at(D2, "00:30")))
    assert plan(db) == {(ANN, D1, "food"): d("2"), (ANN, D2, "food"): d("4")}
    assert sql(db, "SELECT count(*) FROM daily_plan WHERE date <> date_trunc('day', date, 'UTC')") == [(0,)]
    assert_consistent(db)


def test_update_of_the_user_moves_the_amount_to_the_other_user(db: Database) -> None:
    tx = add(db, BOB, at(D1), "food", "10.00")
    add(db, ANN, at(D1), "food", "2.00")
    update(db, tx, "user_id = %s", ANN)  # ANN sorts before BOB: the upsert goes first
    assert plan(db) == {(ANN, D1, "food"): d("12.00"), (BOB, D1, "food"): d("0.00")}
    update(db, tx, "user_id = %s, amount = 3", CAT)
    assert plan(db) == {(ANN, D1, "food"): d("2.00"), (BOB, D1, "food"): d("0.00"), (CAT, D1, "food"): d("3.00")}
    assert_consistent(db)


def test_soft_delete_and_undelete(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "10.00")
    add(db, ANN, at(D1), "food", "2.50")
    update(db, tx, "deleted_at = now()")
    assert plan(db) == {(ANN, D1, "food"): d("2.50")}
    assert_consistent(db)
    update(db, tx, "deleted_at = now(), amount = 99")  # edited while deleted: still counts nowhere
    assert plan(db) == {(ANN, D1, "food"): d("2.50")}
    update(db, tx, "deleted_at = NULL")
    assert plan(db) == {(ANN, D1, "food"): d("101.50")}
    assert_consistent(db)


def test_undelete_into_a_key_without_a_plan_row_creates_it(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "10.00", deleted=True)  # inserted already deleted: counts nowhere
    assert plan(db) == {}
    update(db, tx, "deleted_at = NULL")
    assert plan(db) == {(ANN, D1, "food"): d("10.00")}
    assert_consistent(db)


def test_hard_delete_reverses_the_amount(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "10.00")
    add(db, ANN, at(D1), "food", "2.50")
    sql(db, "DELETE FROM transactions WHERE id = %s", (tx,))
    assert plan(db) == {(ANN, D1, "food"): d("2.50")}
    gone = add(db, ANN, at(D1), "food", "4.00", deleted=True)
    sql(db, "DELETE FROM transactions WHERE id = %s", (gone,))  # a deleted row leaves without a trace
    assert plan(db) == {(ANN, D1, "food"): d("2.50")}
    assert_consistent(db)


def test_subtracting_never_creates_a_plan_row(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "10.00")
    sql(db, "DELETE FROM daily_plan")  # a key whose plan row is gone (as in a cascade)
    update(db, tx, "deleted_at = now()")
    sql(db, "DELETE FROM transactions WHERE id = %s", (tx,))
    assert plan(db) == {}


def test_null_category_is_a_key_like_any_other(db: Database) -> None:
    allow_null_category(db)
    tx = add(db, ANN, at(D1), None, "10.00")
    add(db, ANN, at(D1), None, "1.00")
    add(db, ANN, at(D1), "food", "2.00")
    assert plan(db) == {(ANN, D1, None): d("11.00"), (ANN, D1, "food"): d("2.00")}
    update(db, tx, "category = 'food'")  # NULL -> food: the NULL key sorts first
    assert plan(db) == {(ANN, D1, None): d("1.00"), (ANN, D1, "food"): d("12.00")}
    update(db, tx, "category = NULL, amount = 5")  # food -> NULL
    assert plan(db) == {(ANN, D1, None): d("6.00"), (ANN, D1, "food"): d("2.00")}
    update(db, tx, "amount = 6")  # within the NULL key
    assert plan(db) == {(ANN, D1, None): d("7.00"), (ANN, D1, "food"): d("2.00")}
    sql(db, "DELETE FROM transactions WHERE id = %s", (tx,))
    assert plan(db) == {(ANN, D1, None): d("1.00"), (ANN, D1, "food"): d("2.00")}
    assert sql(db, "SELECT count(*) FROM daily_plan WHERE category IS NULL") == [(1,)]
    assert_consistent(db)


def test_a_transaction_without_spent_at_counts_nowhere_until_it_gets_one(db: Database) -> None:
    tx = add(db, ANN, None, "food", "10.00")
    assert plan(db) == {}
    update(db, tx, "amount = 12")
    assert plan(db) == {}
    update(db, tx, "spent_at = %s", at(D1))
    assert plan(db) == {(ANN, D1, "food"): d("12.00")}
    update(db, tx, "spent_at = NULL")
    assert plan(db) == {(ANN, D1, "food"): d("0.00")}
    assert_consistent(db)


def test_an_update_that_changes_nothing_relevant_writes_no_plan_row(db: Database) -> None:
    tx = add(db, ANN, at(D1, "10:00"), "food", "10.00")
    version = sql(db, "SELECT xmin::text, spent_amount FROM daily_plan")
    update(db, tx, "notes = 'lunch', merchant = 'Cafe', tags = ARRAY['x']")
    update(db, tx, "spent_at = %s", at(D1, "18:00"))  # same day
    update(db, tx, "amount = 10.000")  # numerically the same
    update(db, tx, "user_id = user_id, category = category")
    assert sql(db, "SELECT xmin::text, spent_amount FROM daily_plan") == version
    assert plan(db) == {(ANN, D1, "food"): d("10.00")}
    assert_consistent(db)


def test_multi_row_statements(db: Database) -> None:
    sql(db, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
            "SELECT gen_random_uuid(), (ARRAY[%s, %s]::uuid[])[1 + i %% 2], "
            "(ARRAY['food', 'fun', 'rent'])[1 + i %% 3], i / 100.0, %s::timestamptz + i * interval '37 minutes' "
            "FROM generate_series(1, 500) i",
        (ANN, BOB, at(D1, "00:00")))
    assert_consistent(db)
    sql(db, "UPDATE transactions SET category = 'food', spent_at = spent_at + interval '5 hours' "
            "WHERE amount > 2")
    sql(db, "UPDATE transactions SET deleted_at = now() WHERE amount BETWEEN 1 AND 1.5")
    sql(db, "UPDATE transactions SET user_id = %s WHERE amount < 0.5", (CAT,))
    sql(db, "DELETE FROM transactions WHERE amount > 4.5")
    assert_consistent(db)
    sql(db, "UPDATE transactions SET deleted_at = NULL")
    assert_consistent(db)


# --- deleting a user ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["transactions", "daily_plan"])
def test_deleting_a_user_cascades_through_both_tables(db: Database, first: str) -> None:
    """ON DELETE CASCADE removes both child tables' rows, in the order the foreign keys were made. The AFTER
    events of a cascade's rows fire only once every cascade of the user's deletion has run, so the trigger then
    finds no plan row left to subtract from, in either order: it must not give the vanishing user a plan row back
    (daily_plan's foreign key would fail and, with it, the deletion)."""
    fks = {"transactions": "ALTER TABLE transactions ADD CONSTRAINT fk_transactions_user_id FOREIGN KEY (user_id) "
                           "REFERENCES users (id) ON DELETE CASCADE",
           "daily_plan": "ALTER TABLE daily_plan ADD CONSTRAINT fk_daily_plan_user_id FOREIGN KEY (user_id) "
                         "REFERENCES users (id) ON DELETE CASCADE"}
    sql(db, fks[first])
    sql(db, fks["daily_plan" if first == "transactions" else "transactions"])
    for day in (D1, D2):
        for category in ("food", "fun"):
            add(db, ANN, at(day), category, "3.00")
            add(db, BOB, at(day), category, "4.00")
    add(db, ANN, at(D1), "food", "1.00", deleted=True)
    add(db, ANN, None, "food", "1.00")
    # a goal: its own cascade (fk_goals_user_id) sets goal_id NULL on the transactions (an UPDATE of each)
    goal = str(uuid.uuid4())
    sql(db, "INSERT INTO goals (id, user_id, title, target_amount) VALUES (%s, %s, 'bike', 500)", (goal, ANN))
    sql(db, "UPDATE transactions SET goal_id = %s WHERE user_id = %s", (goal, ANN))
    sql(db, "DELETE FROM users WHERE id = %s", (ANN,))
    assert sql(db, "SELECT count(*) FROM daily_plan WHERE user_id = %s", (ANN,)) == [(0,)]
    assert sql(db, "SELECT count(*) FROM transactions WHERE user_id = %s", (ANN,)) == [(0,)]
    assert plan(db) == {(BOB, day, c): d("4.00") for day in (D1, D2) for c in ("food", "fun")}
    assert_consistent(db)


# --- a random sequence, one connection -----------------------------------------------------------------------


def test_a_random_sequence_stays_consistent_at_every_step(db: Database) -> None:
    allow_null_category(db)
    rnd = random.Random(25)
    ids: list[str] = []
    ops = Operations(rnd, ids)
    with connect(db, autocommit=True) as conn:
        for step in range(400):
            _, statement, params = ops.pick()
            conn.execute(statement, params)
            assert conn.execute(MISMATCHES).fetchone() == (0,), f"after step {step}: {statement} {params}"
    assert_consistent(db)


# --- concurrency -------------------------------------------------------------------------------------------

DAYS = (TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY)
CATEGORIES = ("food", "transport", None)
CLOCKS = ("00:00:00", "00:00:00.000001", "11:30:00", "23:59:59.999999")


class Operations:
    """Random single-row statements over few users, days and categories, so that keys collide a lot."""

    def __init__(self, rnd: random.Random, ids: list[str]) -> None:
        self.rnd, self.ids = rnd, ids  # ids: shared by the workers (list.append and indexing are atomic)

    def spent_at(self) -> datetime:
        day, clock = self.rnd.choice(DAYS), self.rnd.choice(CLOCKS)
        return datetime.fromisoformat(f"{day.isoformat()}T{clock}+00:00")

    def amount(self) -> Decimal:
        return Decimal(self.rnd.randint(0, 10_000)) / 100

    def some_id(self) -> str:
        recent = self.ids[-300:]  # the recent rows: several workers touch the same rows too
        return self.rnd.choice(recent) if recent else str(uuid.uuid4())

    def pick(self) -> tuple[str, str, tuple[Any, ...]]:
        """Gives (kind, statement, params) of a random operation."""
        r = self.rnd
        kind = r.choices(["insert", "amount", "category", "day", "user", "several", "soft delete", "undelete",
                          "delete", "no spent_at"], weights=[30, 10, 10, 10, 8, 6, 9, 9, 6, 2])[0]
        if kind == "insert":
            tx = str(uuid.uuid4())
            self.ids.append(tx)
            return kind, ("INSERT INTO transactions (id, user_id, category, amount, spent_at, deleted_at) "
                          "VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)"), (
                tx, r.choice(USERS), r.choice(CATEGORIES), self.amount(), self.spent_at(), r.random() < 0.05)
        if kind == "delete":
            return kind, "DELETE FROM transactions WHERE id = %s", (self.some_id(),)
        assignment, params = {
            "amount": ("amount = %s", (self.amount(),)),
            "category": ("category = %s", (r.choice(CATEGORIES),)),
            "day": ("spent_at = %s", (self.spent_at(),)),
            "user": ("user_id = %s", (r.choice(USERS),)),
            "several": ("user_id = %s, category = %s, spent_at = %s, amount = %s",
                        (r.choice(USERS), r.choice(CATEGORIES), self.spent_at(), self.amount())),
            "soft delete": ("deleted_at = now()", ()),
            "undelete": ("deleted_at = NULL", ()),
            "no spent_at": ("spent_at = NULL", ()),
        }[kind]
        return kind, f"UPDATE transactions SET {assignment} WHERE id = %s", (*params, self.some_id())


RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

SLOW_PLAN_WRITES = """
CREATE FUNCTION test_slow_plan_write() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.004); RETURN NULL; END $$;
CREATE TRIGGER test_slow_plan_write AFTER INSERT OR UPDATE ON daily_plan
    FOR EACH ROW EXECUTE FUNCTION test_slow_plan_write();"""


@pytest.mark.parametrize("move", ["category", "null category", "day", "user"])
def test_two_rows_moving_between_two_keys_in_opposite_directions_never_deadlock(db: Database, move: str) -> None:
    """Both statements lock the same two plan rows; a plan write made slow (4 ms, by a test trigger on daily_plan)
    holds the first lock long enough for the other statement to take its first lock: in opposite orders, that
    would deadlock every round. The trigger takes them in one order, so the second statement waits instead."""
    allow_null_category(db)
    sql(db, SLOW_PLAN_WRITES)
    key_a, key_b = {"category": ((ANN, D1, "food"), (ANN, D1, "transport")),
                    "null category": ((ANN, D1, None), (ANN, D1, "food")),
                    "day": ((ANN, D1, "food"), (ANN, D2, "food")),
                    "user": ((ANN, D1, "food"), (BOB, D1, "food"))}[move]
    rows = [add(db, key[0], at(key[1]), key[2], amount) for key, amount in ((key_a, "1.00"), (key_b, "2.00"))]
    rounds, together = 12, threading.Barrier(2)
    deadlocks: list[int] = []

    def mover(n: int) -> None:
        with connect(db, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            for i in range(rounds):
                user, day, category = (key_b, key_a)[(i + n) % 2]  # row 0: a -> b -> a..., row 1: b -> a -> b...
                together.wait(timeout=30)
                try:
                    conn.execute("UPDATE transactions SET user_id = %s, spent_at = %s, category = %s WHERE id = %s",
                                 (user, at(day), category, rows[n]))
                except psycopg.errors.DeadlockDetected:
                    deadlocks.append(i)

    threads = [threading.Thread(target=mover, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert deadlocks == []
    assert plan(db) == ({key_a: d("3.00"), key_b: d("0.00")} if rounds % 2 else {key_a: d("1.00"), key_b: d("2.00")})
    assert_consistent(db)


def run_workers(db: Database, workers: int, operations: int, seed: int) -> tuple[Counter[str], float]:
    """Runs `workers` threads, each its own autocommit connection doing `operations` random statements;
    a deadlock or serialization failure is counted and the statement retried. Gives the counts and seconds."""
    ids: list[str] = []
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(n: int) -> None:
        mine: Counter[str] = Counter()
        ops = Operations(random.Random(seed * 100 + n), ids)
        try:
            with connect(db, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '20s'")  # a lock that never comes fails the test, not hangs it
                start.wait()
                for _ in range(operations):
                    kind, statement, params = ops.pick()
                    for attempt in range(10):
                        try:
                            conn.execute(statement, params)
                            break
                        except RETRYABLE as exc:
                            mine[type(exc).__name__] += 1
                            if attempt == 9:
                                raise
                    mine[kind] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
            start.abort()
        with lock:
            counts.update(mine)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return counts, seconds


def test_concurrent_writers_keep_every_plan_row_exact_without_deadlocks(
        db: Database, record_property: Callable[[str, object], None]) -> None:
    allow_null_category(db)
    workers, operations = 8, 2000
    counts, seconds = run_workers(db, workers, operations, seed=25)
    retried = {k: v for k, v in counts.items() if k in ("DeadlockDetected", "SerializationFailure")}
    version = sql(db, "SHOW server_version")[0][0].split()[0]
    summary = (f"PostgreSQL {version}: {workers} workers x {operations} operations in {seconds:.1f} s "
               f"({workers * operations / seconds:,.0f} statements/s); "
               f"deadlocks {counts['DeadlockDetected']}, serialization failures {counts['SerializationFailure']} "
               f"(each retried); mix: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if k not in retried)}")
    print(f"\n{summary}")
    record_property("concurrency", summary)
    assert sum(v for k, v in counts.items() if k not in retried) == workers * operations

    live = sql(db, "SELECT count(*), count(DISTINCT (user_id, (spent_at AT TIME ZONE 'UTC')::date, category)) "
                   "FROM transactions WHERE deleted_at IS NULL AND spent_at IS NOT NULL")[0]
    assert live[0] > 1000 and live[1] == len(USERS) * len(DAYS) * len(CATEGORIES), "the keys really collided"
    assert_consistent(db)
    # single-row statements lock at most two plan rows, always in the same order: they cannot deadlock
    assert not retried, summary
