"""Issue 19: `check --incremental` gives, result for result, what a full check gives on the same state."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database
from mita_integrity.findings import Report
from mita_integrity.runs.findings_history import record
from mita_integrity.seed import SeedOptions, seed_database


def seed(db: Database, **options: object) -> None:
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        seed_database(conn, SeedOptions(**options))  # type: ignore[arg-type]


def sql(db: Database, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def recorded(db: Database, **options: Any) -> Report:
    """Runs a check that is recorded (keeping what the next incremental check starts from)."""
    report = run_check(db, CheckRequest(keep_base=True, parallel=False, **options))
    with psycopg.connect(**db.connect_kwargs()) as conn:
        record(conn, report)
    return report


def outcome(report: Report) -> dict[tuple[str, str], tuple[str, int, int | None]]:
    return {(r.code, r.table): (r.status.value, r.count, r.groups) for r in report.results}


def same_as_full(db: Database, **options: Any) -> Report:
    """Runs check --incremental and a full check on the same state; asserts they agree result for result."""
    inc = run_check(db, CheckRequest(incremental=True, parallel=False, **options))
    full = run_check(db, CheckRequest(parallel=False, **options))
    assert outcome(inc) == outcome(full), {
        k: (v, outcome(full).get(k)) for k, v in outcome(inc).items() if outcome(full).get(k) != v}
    return inc


def how(report: Report) -> dict[str, tuple[str, str | None]]:
    return {f"{r.code}:{r.table}": (r.evaluated, r.evaluated_reason) for r in report.results}


def install_trigger(db: Database) -> None:
    from .test_trigger import install

    install(db)


# ------------------------------------------------------------------------------------------ the named cases

def delete_user(db: Database, user: Any) -> None:
    """Deletes a user; first its rows in the tables whose foreign key would refuse it (NO ACTION, RESTRICT)."""
    refusing = sql(db, "SELECT c.relname, a.attname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
                       "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
                       "WHERE k.contype = 'f' AND k.confrelid = 'public.users'::regclass "
                       "AND k.confdeltype IN ('a', 'r')")
    for table, column in refusing:
        sql(db, f'DELETE FROM public."{table}" WHERE "{column}" = %s', (user,))
    sql(db, "DELETE FROM users WHERE id = %s", (user,))


# Moves the transactions of a (user, category, UTC day) key a day back.
MOVE_A_DAY_BACK = ("UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE user_id = %s "
                   "AND category = %s AND (spent_at AT TIME ZONE 'UTC')::date = %s")


def move_a_recent_key(db: Database) -> tuple[Any, Any, Any]:
    """Moves every transaction of one recent key a day back; gives the key (user, category, its old day)."""
    [(user, day, category)] = sql(db, "SELECT user_id, (spent_at AT TIME ZONE 'UTC')::date, category "
                                      "FROM transactions WHERE deleted_at IS NULL "
                                      "AND spent_at > now() - interval '5 days' ORDER BY id LIMIT 1")
    sql(db, MOVE_A_DAY_BACK, (user, category, day))
    return user, category, day


@pytest.fixture
def clean(baseline_db: Database) -> Database:
    seed(baseline_db, users=40, days=8, seed=5)
    return baseline_db


@pytest.fixture
def dirty(baseline_db: Database) -> Database:
    seed(baseline_db, users=60, days=8, seed=3, corrupt=True)
    return baseline_db


def test_nothing_changed_keeps_every_data_result_and_reads_no_rule_in_full(dirty: Database) -> None:
    recorded(dirty)
    inc = same_as_full(dirty)
    assert inc.mode == "incremental" and inc.base_run
    full = {k: v for k, v in how(inc).items() if v[0] == "full" and v[1] is not None}
    assert all("schema rule" in why for _, why in full.values()), full
    assert how(inc)["REF011:expenses"] == ("incremental", None) and how(inc)["TIM003:transactions"][0] == "incremental"
    assert how(inc)["DUP003:transactions"] == ("incremental", None)
    assert how(inc)["REF001:transactions"] == ("incremental", None)


def test_a_user_deleted_with_cascades(clean: Database) -> None:
    for table in ("transactions", "daily_plan", "goals"):
        sql(clean, f"ALTER TABLE {table} ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE")
    recorded(clean)
    [(user,)] = sql(clean, "SELECT user_id FROM transactions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    delete_user(clean, user)
    inc = same_as_full(clean)
    assert inc.mode == "incremental"
    assert how(inc)["DUP001:users"] == ("incremental", None)  # its groups are found without a log
    assert how(inc)["DUP002:daily_plan"] == ("incremental", None)
    assert how(inc)["AMT003:transactions"] == ("incremental", None)


def test_a_user_deleted_without_a_foreign_key_orphans_unchanged_rows_and_the_orphan_rules_run_in_full(
        clean: Database) -> None:
    recorded(clean)
    [(user,)] = sql(clean, "SELECT user_id FROM transactions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    delete_user(clean, user)  # its transactions stay: orphans nobody touched
    inc = same_as_full(clean)
    ref001 = next(r for r in inc.results if r.code == "REF001")
    assert ref001.count > 0 and ref001.evaluated == "full" and "users" in str(ref001.evaluated_reason)


def test_new_users_only_keep_the_orphan_rules_incremental(dirty: Database) -> None:
    recorded(dirty)
    [(orphan_user,)] = sql(dirty, "SELECT t.user_id FROM transactions t LEFT JOIN users u ON u.id = t.user_id "
                                  "WHERE u.id IS NULL AND t.user_id IS NOT NULL LIMIT 1")
    sql(dirty, "INSERT INTO users (id, email, password_hash) VALUES (%s, 'back@example.com', 'h')", (orphan_user,))
    sql(dirty, "INSERT INTO transactions (id, user_id, category, amount, spent_at, created_at, updated_at) "
               "VALUES (gen_random_uuid(), gen_random_uuid(), 'food', 3, now(), now(), now())")  # a new orphan
    inc = same_as_full(dirty)
    assert how(inc)["REF001:transactions"] == ("incremental", None)


def test_a_duplicate_created_then_removed(dirty: Database) -> None:
    recorded(dirty)
    before = next(r.count for r in same_as_full(dirty).results if r.code == "DUP003")
    [(tx,)] = sql(dirty, "SELECT id FROM transactions WHERE deleted_at IS NULL AND spent_at IS NOT NULL "
                         "ORDER BY id LIMIT 1")
    columns = ("user_id, category, amount, spent_at, currency, created_at, updated_at")
    [(copy,)] = sql(dirty, f"INSERT INTO transactions (id, {columns}) SELECT gen_random_uuid(), {columns} "
                           "FROM transactions WHERE id = %s RETURNING id", (tx,))
    inc = same_as_full(dirty)
    assert next(r.count for r in inc.results if r.code == "DUP003") == before + 1
    recorded(dirty, incremental=True)  # an incremental run is a base too
    sql(dirty, "DELETE FROM transactions WHERE id = %s", (copy,))
    inc = same_as_full(dirty)
    assert next(r.count for r in inc.results if r.code == "DUP003") == before
    assert how(inc)["DUP003:transactions"] == ("incremental", None)  # the base kept the group's members


def test_a_plan_row_whose_transactions_moved_to_another_day(clean: Database) -> None:
    install_trigger(clean)
    sql(clean, "UPDATE daily_plan p SET spent_amount = coalesce((SELECT sum(amount) FROM transactions t "
               "WHERE t.user_id = p.user_id AND t.category = p.category AND t.deleted_at IS NULL "
               "AND (t.spent_at AT TIME ZONE 'UTC')::date = (p.date AT TIME ZONE 'UTC')::date), 0)")
    recorded(clean)
    user, category, day = move_a_recent_key(clean)  # through the trigger: both days' plan rows follow
    inc = same_as_full(clean)
    assert next(r for r in inc.results if r.code == "BUD001").count == 0
    recorded(clean, incremental=True)
    with psycopg.connect(autocommit=True, **clean.connect_kwargs()) as conn:  # the trigger bypassed
        conn.execute("SET session_replication_role = replica")
        conn.execute(MOVE_A_DAY_BACK, (user, category, day - __import__("datetime").timedelta(days=1)))
    inc = same_as_full(clean)
    assert next(r for r in inc.results if r.code == "BUD001").count > 0


def test_a_truncate_runs_that_tables_rules_in_full(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "TRUNCATE daily_plan")
    inc = same_as_full(dirty)
    reason = how(inc)["AMT005:daily_plan"]
    assert reason[0] == "full" and "truncated" in str(reason[1])


def test_a_statistics_reset_means_a_full_run(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "SELECT pg_stat_reset()")
    inc = same_as_full(dirty)
    assert inc.mode == "full" and all(r.evaluated == "full" for r in inc.results)
    assert "statistics reset" in str(how(inc)["DUP003:transactions"][1])


def test_a_base_from_another_catalogue_version_means_a_full_run(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "UPDATE integrity.check_bases SET catalogue = 'an older release'")
    inc = same_as_full(dirty)
    assert inc.mode == "full" and "another rule catalogue" in str(how(inc)["DUP003:transactions"][1])


def test_a_base_older_than_max_base_age_or_with_other_options_means_a_full_run(dirty: Database) -> None:
    recorded(dirty)
    inc = same_as_full(dirty, budget_days=10)
    assert inc.mode == "full" and "other options" in str(how(inc)["DUP003:transactions"][1])
    sql(dirty, "UPDATE integrity.runs SET started_at = started_at - interval '8 days'")
    inc = same_as_full(dirty)
    assert inc.mode == "full" and "--max-base-age" in str(how(inc)["DUP003:transactions"][1])


def test_the_base_is_pruned_with_its_run_and_keeps_under_64_bytes_a_violating_row(dirty: Database) -> None:
    report = recorded(dirty)
    [(rows, size)] = sql(dirty, "SELECT sum(cardinality(keys)), sum(pg_column_size(keys)) "
                                "FROM integrity.check_base_results WHERE keys IS NOT NULL")
    assert rows > 0 and size / rows <= 64, (rows, size)
    sql(dirty, "DELETE FROM integrity.runs WHERE id = %s", (report.run_id,))
    assert sql(dirty, "SELECT count(*) FROM integrity.check_base_results") == [(0,)]


# ------------------------------------------------------------------------- the CLI: report fields, `runs` mode

def test_the_cli_reports_the_mode_and_runs_shows_it(dirty: Database, tmp_path: Any) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from mita_integrity.database.urls import build_url

    url = build_url(dirty.parsed.params, mask_password=False)
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MITA_", "SENTRY_")) and k != "COLUMNS"}
    env["MITA_INTEGRITY_HOME"] = os.environ.get("MITA_INTEGRITY_HOME", "")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "--db", url, "check", "--fail-on", "never", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    first = check("--incremental", "--record", "--format", "json", "--output", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["mode"] == "full" and doc["base_run"] is None and doc["schema_version"] == 1
    assert "no recorded check" in str(doc["results"][0]["evaluated_reason"])
    second = check("--incremental", "--record", "--format", "json", "--output", str(tmp_path / "b.json"))
    assert second.returncode == 0, second.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["mode"] == "incremental" and doc["base_run"] == json.loads((tmp_path / "a.json").read_text())["run_id"]
    assert {r["evaluated"] for r in doc["results"]} == {"full", "incremental"}
    text = check("--incremental")
    assert "mode       incremental from run" in text.stdout, text.stdout
    plain = check()
    assert "mode " not in plain.stdout
    for columns in ("200", "80"):  # at 80 columns the summary is cut: the mode comes first, so it stays
        runs = subprocess.run([exe, "--db", url, "runs"], capture_output=True, text=True,
                              env={**env, "COLUMNS": columns}, timeout=120)
        lines = runs.stdout.splitlines()
        assert " check  completed  incremental: " in lines[1] and " check  completed  full: " in lines[2], lines


# ------------------------------------------------------------------ schedule --incremental --full-every 7d

def test_the_schedule_runs_incremental_checks_and_a_full_one_at_least_every_full_every(dirty: Database) -> None:
    from datetime import UTC, datetime

    from mita_integrity.schedule.runner import ScheduleRequest, run_once

    request = ScheduleRequest(check=CheckRequest(parallel=False), incremental=True, full_every_s=7 * 86400)

    def scheduled() -> Report:
        run = run_once(dirty, request, now=datetime.now(UTC), per_slot=False)
        assert run.report is not None
        return run.report

    first = scheduled()
    assert first.mode == "full" and "no recorded check" in str(first.results[0].evaluated_reason)
    second = scheduled()
    assert second.mode == "incremental" and second.base_run == first.run_id
    third = scheduled()
    assert third.mode == "incremental" and third.base_run == second.run_id
    sql(dirty, "UPDATE integrity.runs SET started_at = started_at - interval '8 days' WHERE id = %s",
        (first.run_id,))
    weekly = scheduled()
    assert weekly.mode == "full" and "--full-every" in str(weekly.results[0].evaluated_reason)
    assert outcome(weekly) == outcome(third)
    assert scheduled().mode == "incremental"
    modes = sql(dirty, "SELECT summary->>'mode' FROM integrity.runs ORDER BY recorded_at")
    assert [m for (m,) in modes] == ["full", "incremental", "incremental", "full", "incremental"]


def test_a_column_added_with_a_default_runs_that_tables_rules_in_full(dirty: Database) -> None:
    recorded(dirty)
    # No row version changes, yet every row now has the column's default: a live-only rule must see it.
    sql(dirty, "ALTER TABLE transactions DROP COLUMN deleted_at CASCADE")
    sql(dirty, "ALTER TABLE transactions ADD COLUMN deleted_at timestamptz DEFAULT '2020-01-01'")
    inc = same_as_full(dirty)  # every transaction is soft-deleted now: the live-only rules find nothing
    assert next(r for r in inc.results if r.code == "AMT003").count == 0
    assert "columns of transactions changed" in str(how(inc)["AMT003:transactions"][1])


def test_two_connections_share_the_change_scans_in_one_snapshot(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "UPDATE transactions SET amount = -amount WHERE id IN (SELECT id FROM transactions ORDER BY id LIMIT 5)")
    sql(dirty, "DELETE FROM daily_plan WHERE id IN (SELECT id FROM daily_plan ORDER BY id LIMIT 3)")
    inc = run_check(dirty, CheckRequest(incremental=True))  # two connections where the server allows them
    full = run_check(dirty, CheckRequest(parallel=False))
    assert outcome(inc) == outcome(full)
    scans = {p.name: p.connection for p in inc.passes if p.name.startswith("changes:")}
    assert "changes:transactions" in scans and set(scans.values()) == {1, 2}, scans
