"""Migrations 0022-0026 on a real PostgreSQL: catalog-equal both ways, the clean-up archived, rows that need
a person left NOT VALID, `migrate validate`, a stamped database, a killed migration, and CASCADE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url
from mita_integrity.migration import command as migrate
from mita_integrity.migration.online import pending_constraints
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.seed import SeedOptions, seed_database
from tests.support.schema_snapshot import diff, snapshot

from .dbstate import archived, assert_nothing_lost, row_counts
from .dbstate import run_sql as _sql

HEAD = "0027_harden_spent_trigger"
ANN = "00000000-0000-0000-0000-000000000001"
PERSON_CHECKS = {"ck_goals_saved_le_target", "ck_goals_target_positive", "ck_transactions_amount_nonnegative",
                 "ck_daily_plan_planned_nonnegative"}


def _catalog(db: Database) -> Any:
    with connect(db) as conn:
        return snapshot(conn)


def _seed(db: Database, users: int = 40) -> None:
    with connect(db) as conn:
        seed_database(conn, SeedOptions(users=users, days=20, seed=3, corrupt=True))


def test_upgrade_head_and_back_is_catalog_equal_each_way(baseline_db: Database) -> None:
    baseline = _catalog(baseline_db)
    migrate.upgrade(baseline_db, "head")
    head = _catalog(baseline_db)
    assert diff(baseline, head)  # the chain changes the schema
    assert migrate.downgrade(baseline_db, "0021_add_habit_completions_table").to_revision == migrate.BASELINE
    assert diff(baseline, _catalog(baseline_db)) == []
    migrate.upgrade(baseline_db, "head")
    assert diff(head, _catalog(baseline_db)) == []
    for step in ("0025_add_daily_plan_spent_trigger", "0024_add_check_constraints",
                 "0023_add_unique_constraint_daily_plan", "0022_add_missing_fk_constraints"):
        migrate.downgrade(baseline_db, step)
        migrate.upgrade(baseline_db, "head")  # every downgrade really returns, every upgrade really comes back
        assert diff(head, _catalog(baseline_db)) == [], step


def test_seeded_upgrade_archives_what_it_removes_and_leaves_person_rows_not_valid(baseline_db: Database) -> None:
    _seed(baseline_db)
    before = row_counts(baseline_db)
    migrate.upgrade(baseline_db, "head")
    archive = archived(baseline_db)
    assert archive, "the clean-up archived nothing"
    assert_nothing_lost(before, {t: n for t, n in row_counts(baseline_db).items() if t in before}, archive)
    with connect(baseline_db, autocommit=True) as conn:
        assert {name for _, name, _ in pending_constraints(conn)} == PERSON_CHECKS
    report = run_check(baseline_db, CheckRequest(select=["BUD001", "DUP002", "REF", "SCH001", "SCH003", "SCH005",
                                                         "SCH008", "SCH009"], ignore=["REF011"]))
    assert [(r.code, r.table, r.count) for r in report.results if r.failed] == []

    # An operator resolves them: the unsafe repair where there is one, SQL for the rest; then validate.
    request = FixRequest(select=("GOL003",), unsafe=True)
    apply_fix(baseline_db, plan_fix(baseline_db, request), request)
    _sql(baseline_db, """UPDATE goals SET target_amount = 1 WHERE target_amount <= 0;
                         UPDATE transactions SET amount = -amount
                          WHERE amount < 0 AND category NOT IN ('refund', 'income');
                         UPDATE daily_plan SET planned_amount = 0 WHERE planned_amount < 0;""")
    results = migrate.validate_pending(baseline_db)
    assert {r.name for r in results if r.validated} == PERSON_CHECKS
    assert migrate.validate_pending(baseline_db) == []  # idempotent


def test_stamped_past_0022_is_detected_and_recovered(baseline_db: Database) -> None:
    migrate.stamp(baseline_db, "0022_add_missing_fk_constraints")
    sch009 = [r for r in run_check(baseline_db, CheckRequest(select=["SCH009"])).results if r.failed]
    assert sch009 and sch009[0].count > 0
    # Each migration does only what is missing: going back and up again runs 0022 for real.
    migrate.downgrade(baseline_db, migrate.BASELINE)
    migrate.upgrade(baseline_db, "head")
    assert not [r for r in run_check(baseline_db, CheckRequest(select=["SCH009"])).results if r.failed]
    assert {n for (n,) in _sql(baseline_db, "SELECT conname FROM pg_constraint WHERE convalidated "
                                            "AND conname IN ('fk_daily_plan_user_id', 'fk_subscriptions_user_id')")} \
        == {"fk_daily_plan_user_id", "fk_subscriptions_user_id"}


def test_0025_refuses_without_0023s_unique_key(baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")
    migrate.stamp(baseline_db, "0024_add_check_constraints")
    with pytest.raises(Exception, match="needs uq_daily_plan_user_date_category"):
        migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == "0024_add_check_constraints"


def test_a_killed_migration_runs_again_to_the_end(baseline_db: Database) -> None:
    _sql(baseline_db, f"""INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
        INSERT INTO daily_plan (id, user_id, date, category, created_at)
        SELECT md5('p' || g)::uuid, md5('ghost' || g)::uuid, date '2026-01-01', 'food', now()
          FROM generate_series(1, 30000) g;""")
    script = Path(sys.executable).with_name("mita-integrity")
    url = build_url(baseline_db.parsed.params, mask_password=False)
    proc = subprocess.Popen([str(script), "--db", url, "migrate", "upgrade", "head"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            started = _sql(baseline_db, "SELECT to_regclass('integrity.archive') IS NOT NULL")[0][0]
            if started and _sql(baseline_db, "SELECT count(*) FROM integrity.archive")[0][0] > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the migration finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert migrate.current(baseline_db).revision == migrate.BASELINE  # 0022 is recorded only when complete
    gone = _sql(baseline_db, "SELECT count(*) FROM integrity.archive")[0][0]
    assert _sql(baseline_db, "SELECT count(*) FROM daily_plan")[0][0] + gone == 30000
    migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == HEAD
    assert _sql(baseline_db, "SELECT count(*) FROM daily_plan")[0][0] == 0
    assert _sql(baseline_db, "SELECT count(*) FROM integrity.archive")[0][0] == 30000
    assert _sql(baseline_db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")[0][0] == 0


def test_at_head_deleting_a_user_removes_every_child_row(baseline_db: Database) -> None:
    _seed(baseline_db, users=30)
    migrate.upgrade(baseline_db, "head")
    tables = [t for (t,) in _sql(baseline_db, """SELECT c.relname FROM pg_attribute a JOIN pg_class c
        ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
        AND c.relkind = 'r' AND a.attname = 'user_id' AND a.atttypid = 'uuid'::regtype ORDER BY 1""")]
    counts = " + ".join(f"(SELECT count(*) FROM {t} WHERE user_id = u.id)" for t in tables)
    user, children = _sql(baseline_db, f"SELECT u.id, {counts} AS n FROM users u ORDER BY n DESC LIMIT 1")[0]
    assert children > 10
    _sql(baseline_db, f"DELETE FROM users WHERE id = '{user}'")
    assert _sql(baseline_db, f"SELECT {counts.replace('u.id', repr(str(user)))}")[0][0] == 0


def test_unique_key_rejects_null_categories_and_goal_savings_keep_both_amounts(baseline_db: Database) -> None:
    _sql(baseline_db, f"""INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
        INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount, created_at) VALUES
          ('30000000-0000-0000-0000-000000000001', '{ANN}', '2026-01-11 00:00+00', 'goal_savings', 20, 5, '2026-01-01'),
          ('30000000-0000-0000-0000-000000000002', '{ANN}', '2026-01-11 00:00+00', 'goal_savings', 30, 7, '2026-01-02');
    """)
    migrate.upgrade(baseline_db, "0023_add_unique_constraint_daily_plan")
    assert _sql(baseline_db, "SELECT planned_amount::text, spent_amount::text FROM daily_plan") == [("50.00", "12.00")]
    _sql(baseline_db, f"INSERT INTO daily_plan (user_id, date, category) VALUES ('{ANN}', '2026-01-12', NULL)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _sql(baseline_db, f"INSERT INTO daily_plan (user_id, date, category) VALUES ('{ANN}', '2026-01-12', NULL)")
    with pytest.raises(psycopg.errors.CheckViolation):  # a time of day would make a second row of one day
        _sql(baseline_db, f"INSERT INTO daily_plan (user_id, date, category) VALUES ('{ANN}', '2026-01-13 10:00', 'x')")


def test_fix_migrate_verify_then_resolve_validate_and_round_trip(baseline_db: Database) -> None:
    """Issue 5's Done-when, on a database seeded with every defect."""
    from mita_integrity.runs import findings_history as history
    from mita_integrity.verify.scorecard import run_verify

    def record() -> None:
        with connect(baseline_db) as conn:
            history.record_check(conn, run_check(baseline_db, CheckRequest()))

    _seed(baseline_db)
    request = FixRequest()
    apply_fix(baseline_db, plan_fix(baseline_db, request), request)
    migrate.upgrade(baseline_db, "head")
    record()
    card = run_verify(baseline_db)
    failing = {line.name: line.evidence for line in card.lines if not line.passed}
    # Both wait for a person, and say so; referential-integrity counts the same orphans as `orphans` (16.2).
    assert set(failing) == {"orphans", "checks-0024", "referential-integrity"}
    assert "REF011" in failing["orphans"] and "NOT VALID" in failing["checks-0024"]

    unsafe = FixRequest(select=("GOL003",), unsafe=True)
    apply_fix(baseline_db, plan_fix(baseline_db, unsafe), unsafe)
    bad_id = "user_id !~ '^[0-9a-f-]{{36}}$' OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id::text = {t}.user_id)"
    _sql(baseline_db, "UPDATE goals SET target_amount = 100 WHERE target_amount <= 0;"
                      "UPDATE transactions SET amount = -amount "
                      "WHERE amount < 0 AND category NOT IN ('refund', 'income');"
                      "UPDATE daily_plan SET planned_amount = 0 WHERE planned_amount < 0;"
                      + "".join(f"DELETE FROM {t} WHERE {bad_id.format(t=t)};"
                                for t in ("expenses", "user_answers", "user_profiles")))
    assert all(r.validated for r in migrate.validate_pending(baseline_db))
    record()
    assert run_verify(baseline_db).passed
    migrate.downgrade(baseline_db, "0021_add_habit_completions_table")
    migrate.upgrade(baseline_db, "head")
    record()
    assert run_verify(baseline_db).passed
