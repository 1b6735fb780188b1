"""Issue 14, items 6-10: the spent_amount trigger at the edges of the data, as migration 0027 leaves it.

What daily_plan can hold exactly (rules/plan_limits.py) is counted; everything else counts nowhere and is
named by BUD002, so the plan, the trigger and BUD001 agree exactly and no application write fails. The
fixtures are those of test_trigger.py (0023's key, then 0025's and 0027's files, as the migrations run them).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.backup import pg_dump_binary
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url
from mita_integrity.migration import command as migrate
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix

from .conftest import PgServer, template_at
from .test_trigger import ANN, BOB, D1, D2, add, assert_consistent, at, bud001, d, db, plan, sql, update

__all__ = ["db"]  # the fixture, re-exported for pytest

LONG = "x" * 101
HUNDRED = "x" * 100
TRAILING = "x" * 100 + " "  # 101 characters: varchar(100) would cut the space silently


def count(db: Database, code: str, budget_days: int = 3650) -> int:
    report = run_check(db, CheckRequest(select=[code], budget_days=budget_days))
    result = next(r for r in report.results if r.code == code)
    assert result.status.value in ("pass", "fail"), result.reason
    return result.count


def fix(db: Database, *codes: str) -> tuple[int, list[str]]:
    """Runs fix --apply on the codes; gives (rows archived, notes)."""
    request = FixRequest(select=codes, budget_days=3650)
    outcome = apply_fix(db, plan_fix(db, request), request)
    return outcome.archived, [n for i in outcome.items for n in i.done.notes]


# --- 6. long categories ----------------------------------------------------------------------------------


def test_a_category_longer_than_the_plan_holds_is_written_counted_nowhere_and_named(db: Database) -> None:
    tx = add(db, ANN, at(D1), LONG, "5.00")  # 0025's function: StringDataRightTruncation, the write fails
    assert plan(db) == {}
    update(db, tx, "amount = %s", d("7.00"))
    assert plan(db) == {}
    assert count(db, "BUD002") == 1
    assert_consistent(db)
    update(db, tx, "category = 'food'")  # shortened by a person: now it counts
    assert plan(db) == {(ANN, D1, "food"): d("7.00")}
    assert count(db, "BUD002") == 0
    assert_consistent(db)


def test_a_trailing_space_past_100_characters_is_never_cut_into_another_key(db: Database) -> None:
    add(db, ANN, at(D1), HUNDRED, "3.00")
    tx = add(db, ANN, at(D1), TRAILING, "5.00")  # 0025: cut into HUNDRED's key, 8.00
    assert plan(db) == {(ANN, D1, HUNDRED): d("3.00")}
    sql(db, "DELETE FROM transactions WHERE id = %s", (tx,))  # 0025: subtracted nothing, 8.00 for ever
    assert plan(db) == {(ANN, D1, HUNDRED): d("3.00")}
    assert_consistent(db)


def test_a_legacy_long_category_neither_breaks_fix_nor_the_upgrade_to_head(baseline_db: Database) -> None:
    db = baseline_db
    sql(db, f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h')")
    add(db, ANN, at(D1), LONG, "5.00")
    add(db, ANN, at(D1), "food", "2.00")
    archived, _ = fix(db, "BUD001")  # today: StringDataRightTruncation inserting the long key's plan row
    assert archived == 1
    sql(db, "DELETE FROM daily_plan")
    migrate.upgrade(db, "head")  # today: fails in 0025's clean-up, leaving 0025's trigger at 0024
    assert sql(db, "SELECT version_num FROM integrity.alembic_version") == [("0027_harden_spent_trigger",)]
    assert plan(db) == {(ANN, D1, "food"): d("2.00")}
    add(db, ANN, at(D2), LONG, "1.00")  # and the application's write still succeeds
    assert count(db, "BUD002") == 2
    assert_consistent(db)


# --- 7. more than two decimals ---------------------------------------------------------------------------


def test_three_decimals_are_never_rounded_into_the_plan(db: Database) -> None:
    tx = add(db, ANN, at(D1), "food", "0.005")
    sql(db, "DELETE FROM transactions WHERE id = %s", (tx,))  # 0025: 0.01 in, 0.01 out... and 0.01 left
    for _ in range(3):
        add(db, ANN, at(D1), "food", "0.004")  # 0025: three times 0.00
    add(db, ANN, at(D1), "food", "1.250")  # three decimals written, two meant: it fits, and counts
    assert plan(db) == {(ANN, D1, "food"): d("1.25")}
    assert count(db, "BUD002") == 3
    assert_consistent(db)
    assert fix(db, "BUD001")[0] == 0  # nothing to recompute, run after run


def test_bud001_repair_of_a_three_decimal_key_sticks(baseline_db: Database) -> None:
    db = baseline_db  # no trigger: the repair alone must agree with BUD001, and not rewrite the row every run
    sql(db, f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h')")
    add(db, ANN, at(D1), "food", "0.004")
    add(db, ANN, at(D1), "food", "0.004")
    add(db, ANN, at(D1), "food", "2.00")
    assert fix(db, "BUD001")[0] == 1
    assert plan(db) == {(ANN, D1, "food"): d("2.00")}
    assert bud001(db) == 0  # today: 2.01 stored, 2.008 summed: BUD001 fails again, and again after every run
    assert fix(db, "BUD001")[0] == 0


# --- 8. NaN and overflow ---------------------------------------------------------------------------------


def test_nan_never_reaches_the_plan(db: Database) -> None:
    add(db, ANN, at(D1), "food", "2.00")
    tx = add(db, ANN, at(D1), "food", "NaN")  # passes 0024's CHECK (NaN sorts above every number)
    assert plan(db) == {(ANN, D1, "food"): d("2.00")}  # today: NaN for ever
    update(db, tx, "amount = 3")
    assert plan(db) == {(ANN, D1, "food"): d("5.00")}
    update(db, tx, "amount = 'NaN'")
    assert plan(db) == {(ANN, D1, "food"): d("2.00")}
    assert_consistent(db)


def test_a_day_over_numeric_12_2_keeps_its_row_and_needs_a_person_and_nothing_fails(db: Database) -> None:
    add(db, ANN, at(D1), "food", "6000000000.00")
    big = add(db, ANN, at(D1), "food", "6000000000.00")  # today: numeric field overflow, the write fails
    assert plan(db) == {(ANN, D1, "food"): d("6000000000.00")}
    assert count(db, "BUD002") == 2
    assert bud001(db) == 0
    assert fix(db, "BUD001", "AMT006")[0] == 0  # nothing safe to do, and no crash
    sql(db, "DELETE FROM transactions WHERE id = %s", (big,))  # back in range: BUD001 sees the stale row
    assert bud001(db) == 1
    assert fix(db, "BUD001")[0] == 1
    assert_consistent(db)


def test_a_merge_whose_sum_overflows_is_left_to_a_person_and_the_run_goes_on(baseline_db: Database) -> None:
    db = baseline_db  # before 0023: duplicates can exist
    sql(db, f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h')")
    sql(db, "INSERT INTO daily_plan (user_id, date, category, spent_amount, created_at) VALUES "
            f"('{ANN}', '{D1}', 'food', 6000000000, now()), ('{ANN}', '{D1} 00:00:00.5+00', 'food', 6000000000, now()),"
            f"('{ANN}', '{D2}', 'food', 1, now()), ('{ANN}', '{D2}', 'food', 2, now())")
    archived, notes = fix(db, "DUP002")  # today: NumericValueOutOfRange, the whole run fails
    assert archived == 2 and any("need a person" in n for n in notes)
    assert sql(db, "SELECT count(*) FROM daily_plan") == [(3,)]


# --- 9. the BUD001 repair racing with the trigger ------------------------------------------------------------


def test_bud001_insert_of_a_missing_plan_row_survives_a_concurrent_insert_into_the_same_key(db: Database) -> None:
    add(db, ANN, at(D1), "food", "4.00")
    sql(db, "DELETE FROM daily_plan")  # the key lost its plan row: BUD001's repair will insert it
    request = FixRequest(select=("BUD001",), budget_days=3650)
    fix_plan = plan_fix(db, request)
    outcome: list[object] = []
    with connect(db) as other:  # a transaction of the same key, not yet committed: its plan row is pending
        other.execute("INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                      "VALUES (%s, %s, 'food', 6, %s)", (str(uuid.uuid4()), ANN, at(D1)))

        def run() -> None:
            try:
                outcome.append(apply_fix(db, fix_plan, request))
            except Exception as exc:  # noqa: BLE001 - the test reports it
                outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO daily_plan%%'")
        deadline = time.monotonic() + 30
        while sql(db, waiting) == [(0,)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sql(db, waiting) == [(1,)], "the repair's insert waits on the pending plan row"
        other.commit()
        worker.join(60)
    assert not isinstance(outcome[0], Exception), outcome[0]  # today: UniqueViolation
    assert plan(db) == {(ANN, D1, "food"): d("10.00")}
    assert_consistent(db)


# --- 10. TRUNCATE, search_path and restores --------------------------------------------------------------


def test_truncate_leaves_nothing_spent(db: Database) -> None:
    add(db, ANN, at(D1), "food", "4.00")
    add(db, BOB, at(D2), "rent", "9.00")
    sql(db, "TRUNCATE transactions")  # today: every spent_amount stays as it was
    assert plan(db) == {(ANN, D1, "food"): d("0.00"), (BOB, D2, "rent"): d("0.00")}
    assert_consistent(db)


def test_the_trigger_works_under_pg_dumps_search_path(db: Database) -> None:
    with connect(db, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog")  # as pg_dump's scripts run; today: daily_plan not found
        conn.execute("INSERT INTO public.transactions (id, user_id, category, amount, spent_at) "
                     "VALUES (%s, %s, 'food', 2.5, %s)", (str(uuid.uuid4()), ANN, at(D1)))
    assert plan(db) == {(ANN, D1, "food"): d("2.50")}
    assert sql(db, "SELECT proconfig FROM pg_proc WHERE proname = 'update_daily_plan_spent'") == [
        (["search_path=pg_catalog, pg_temp"],)]


def _tool(pg: PgServer, name: str) -> str:
    return str(pg_dump_binary(pg.major).with_name(name))


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


@pytest.mark.parametrize("disable_triggers", [True, False])
def test_a_data_only_restore_into_a_database_at_head_as_documented(
        pg: PgServer, tmp_path: Path, disable_triggers: bool) -> None:
    """docs/operations.md, "Backup and restore": a data-only restore runs with --disable-triggers."""
    names = [f"mita_t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    source, target = (pg.create_database(n, template=template_at(pg, "head")) for n in names)
    try:
        sql(source, "INSERT INTO users (id, email, password_hash) VALUES (%s, 'ann@example.com', 'h')", (ANN,))
        add(source, ANN, at(D1), "food", "4.00")
        add(source, ANN, at(D1), "food", "1.50")
        dump = tmp_path / "data.dump"
        subprocess.run([_tool(pg, "pg_dump"), "--data-only", "-Fc", "--exclude-table-data=public.alembic_version",
                        "--exclude-table-data=integrity.alembic_version", "-f", str(dump), _url(source)],
                       check=True, capture_output=True)
        restore = [_tool(pg, "pg_restore"), "--data-only", "--exit-on-error", "-d", _url(target), str(dump)]
        if disable_triggers:
            restore.insert(2, "--disable-triggers")
        subprocess.run(restore, check=True, capture_output=True)
        spent = sql(target, "SELECT spent_amount FROM daily_plan")
        if disable_triggers:
            assert spent == [(Decimal("5.50"),)]
            assert bud001(target) == 0
        else:  # what the documentation warns about: every restored transaction added again
            assert spent == [(Decimal("11.00"),)]
    finally:
        for name in names:
            pg.drop_database(name)


def test_a_session_pinned_path_is_not_shadowed_by_a_schema_named_after_the_user(baseline_db: Database) -> None:
    db = baseline_db  # 14.1, the session half: the default path is "$user", public
    sql(db, f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h')")
    add(db, ANN, at(D1), "food", "-3.00")
    user = sql(db, "SELECT current_user")[0][0]
    sql(db, psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(user)).as_string(None))
    sql(db, psycopg.sql.SQL("CREATE TABLE {}.transactions (LIKE public.transactions)").format(
        psycopg.sql.Identifier(user)).as_string(None))
    assert count(db, "AMT003") == 1  # today: pass, over the empty shadow table


def test_0027_downgrades_to_0025s_function_and_upgrades_again(pg: PgServer) -> None:
    name = f"mita_t_{uuid.uuid4().hex[:12]}"
    db = pg.create_database(name, template=template_at(pg, "head"))
    function = ("SELECT proconfig, (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'transactions'::regclass "
                "AND tgname LIKE 'trg_transactions_daily_plan_spent%%') FROM pg_proc "
                "WHERE proname = 'update_daily_plan_spent'")
    try:
        assert sql(db, function) == [(["search_path=pg_catalog, pg_temp"], 2)]
        migrate.downgrade(db, "0026_complete_user_foreign_keys")
        assert sql(db, function) == [(None, 1)]  # 0025's function and its one trigger, exactly
        sql(db, "INSERT INTO users (id, email, password_hash) VALUES (%s, 'ann@example.com', 'h')", (ANN,))
        with pytest.raises(psycopg.errors.StringDataRightTruncation):  # 0025's behaviour, as it was
            add(db, ANN, at(D1), LONG, "1.00")
        migrate.upgrade(db, "head")
        assert sql(db, function) == [(["search_path=pg_catalog, pg_temp"], 2)]
        add(db, ANN, at(D1), LONG, "1.00")
    finally:
        pg.drop_database(name)
