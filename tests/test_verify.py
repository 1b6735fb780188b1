"""`verify` and `check --record` on a real PostgreSQL: the baseline fails the metrics 0022-0026 are for, a
hand-built "after the migrations" state passes every line, and the probes leave nothing behind."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

import mita_integrity
from mita_integrity.check.rules.context import load_schema
from mita_integrity.check.rules.references import user_id_tables
from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.runs import run_history
from mita_integrity.seed import SeedOptions, seed_database

from .dbstate import checksums
from .dbstate import cli_url as _url
from .dbstate import run_sql as _sql

TRIGGER_SQL = Path(mita_integrity.__file__).parent / "migrations" / "sql" / "0025_daily_plan_spent_trigger.sql"
CHECKS = {
    "ck_goals_saved_le_target": ("goals", "saved_amount <= target_amount"),
    "ck_goals_progress_le_100": ("goals", "progress <= 100"),
    "ck_goals_target_positive": ("goals", "target_amount > 0"),
    "ck_transactions_amount_nonnegative": ("transactions", "amount >= 0 OR category IN ('refund', 'income')"),
    "ck_daily_plan_planned_nonnegative": ("daily_plan", "planned_amount >= 0"),
}
# Used only while 0025's own SQL is not there: the trigger's contract in its simplest correct form.
STAND_IN_TRIGGER = """
CREATE OR REPLACE FUNCTION update_daily_plan_spent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL AND OLD.spent_at IS NOT NULL THEN
        UPDATE daily_plan SET spent_amount = coalesce(spent_amount, 0) - OLD.amount
         WHERE user_id = OLD.user_id AND category IS NOT DISTINCT FROM OLD.category
           AND date = ((OLD.spent_at AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC';
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL AND NEW.spent_at IS NOT NULL THEN
        INSERT INTO daily_plan AS p (user_id, date, category, planned_amount, spent_amount)
        VALUES (NEW.user_id, ((NEW.spent_at AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC',
                NEW.category, 0, NEW.amount)
        ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
        DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_transactions_daily_plan_spent AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION update_daily_plan_spent();
"""
ORPHAN_HABIT = ("INSERT INTO habits (id, user_id, title) VALUES ('00000000-0000-0000-0000-0000000000a1', "
                "'00000000-0000-0000-0000-0000000000ff', 'walk')")
PROBE_LINES = ("cascade-probe", "calendar-unique", "spent-trigger")


def _verify(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    code = main(["--db", url, "verify", "--format", "json", *args])
    out, err = capsys.readouterr()
    card = json.loads(out)
    lines = {line["name"]: line for line in card["lines"]}
    assert card["passed"] == (code == 0) and card["passed"] == all(line["passed"] for line in card["lines"])
    return code, lines, err


def _failing(lines: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, line in lines.items() if not line["passed"]}


def migrate_by_hand(db: Database) -> None:
    """What 0022-0026 leave behind, written by hand: CASCADE FKs, deleted_at, the unique key, CHECKs, trigger."""
    with connect(db) as conn, conn.cursor() as cur:
        schema = load_schema(cur)
        for table in user_id_tables(schema, uuid=True):
            for con in schema.constraints:
                if con.kind == "f" and con.table == table and con.ref_table == "users":
                    cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{con.name}"')
            cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_user_id FOREIGN KEY (user_id) "
                        "REFERENCES users (id) ON DELETE CASCADE")
        cur.execute("ALTER TABLE subscriptions ADD COLUMN deleted_at timestamptz")
        cur.execute("ALTER TABLE daily_plan ADD CONSTRAINT uq_daily_plan_user_date_category "
                    "UNIQUE NULLS NOT DISTINCT (user_id, date, category)")
        for name, (table, expression) in CHECKS.items():
            cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({expression})")
        cur.execute(TRIGGER_SQL.read_text() if TRIGGER_SQL.exists() else STAND_IN_TRIGGER)
        cur.execute("UPDATE integrity.alembic_version SET version_num = '0026_complete_user_foreign_keys'")
        conn.commit()


@pytest.fixture
def after_db(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> Database:
    """A baseline with a little clean data, then the migrations' end state by hand, then a recorded check."""
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=4, days=3, seed=5))
    # The seed writes spent_amount as the app would; plan dates are at midnight and unique already.
    migrate_by_hand(baseline_db)
    assert main(["--db", _url(baseline_db), "check", "--record", "--format", "json", "--fail-on", "never"]) == 0
    capsys.readouterr()
    return baseline_db


def test_the_baseline_fails_what_the_migrations_are_for(capsys: pytest.CaptureFixture[str],
                                                        baseline_db: Database) -> None:
    before = checksums(baseline_db)
    code, lines, err = _verify(capsys, _url(baseline_db))
    assert code == 1 and err == ""
    assert _failing(lines) == {"fk-0022", "user-fk-cascade", "cascade-probe", "calendar-unique", "checks-0024",
                               "spent-trigger", "recent-check"}
    assert "fk_daily_plan_user_id missing" in lines["fk-0022"]["evidence"]
    assert "no FK to users: budget_advice, daily_plan" in lines["user-fk-cascade"]["evidence"]
    assert "ai_analysis_snapshots_user_id_fkey (NO ACTION)" in lines["user-fk-cascade"]["evidence"]
    probe = lines["cascade-probe"]["evidence"]
    assert "blocked by ai_analysis_snapshots_user_id_fkey" in probe and "kept the deleted user's rows" in probe
    assert "transactions (" in probe and "moods (" in probe  # no FK: their rows stay behind
    unique = lines["calendar-unique"]["evidence"]
    assert "uq_daily_plan_user_date_category missing" in unique and "was accepted" in unique
    assert lines["checks-0024"]["evidence"].count("missing") == 5
    assert lines["spent-trigger"]["evidence"].startswith("trigger missing")
    assert lines["recent-check"]["evidence"].startswith("no check run recorded")
    assert lines["orphans"]["evidence"].startswith("0 orphans in ")
    assert lines["referential-integrity"]["evidence"].startswith("100 %")
    assert checksums(baseline_db) == before
    # verify never creates the integrity store (the schema holds only the chain's own version table here)
    assert _sql(baseline_db, "SELECT to_regclass('integrity.runs'), to_regclass('integrity.archive')") == [(None, None)]


def test_after_the_migrations_every_line_passes(capsys: pytest.CaptureFixture[str], after_db: Database) -> None:
    before = checksums(after_db)
    code, lines, err = _verify(capsys, _url(after_db))
    assert code == 0, lines
    assert _failing(lines) == set()
    assert len(lines) == 11
    assert "all children removed" in lines["cascade-probe"]["evidence"]
    assert "skipped" not in lines["cascade-probe"]["evidence"]
    assert lines["calendar-unique"]["evidence"] == ("uq_daily_plan_user_date_category present; duplicate inserts "
                                                    "rejected by uq_daily_plan_user_date_category, with category "
                                                    "NULL too")
    assert "insert 10, update 25, soft delete 0, undelete 25, delete 0" in lines["spent-trigger"]["evidence"]
    assert lines["referential-integrity"]["evidence"].startswith("100 % (0 of ")
    assert "0026_complete_user_foreign_keys" in lines["migrations-applied"]["evidence"]
    assert checksums(after_db) == before  # every probe was rolled back

    assert main(["--db", _url(after_db), "verify"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS  ") == 11 and "verify: all 11 metrics pass" in out


def test_a_not_valid_check_shows_its_violators_and_the_command(capsys: pytest.CaptureFixture[str],
                                                               after_db: Database) -> None:
    _sql(after_db, """
        ALTER TABLE goals DROP CONSTRAINT ck_goals_saved_le_target;
        INSERT INTO goals (id, user_id, title, target_amount, saved_amount)
        SELECT gen_random_uuid(), (SELECT id FROM users ORDER BY id LIMIT 1), 'bike', 100, 150
          FROM generate_series(1, 2);
        ALTER TABLE goals ADD CONSTRAINT ck_goals_saved_le_target CHECK (saved_amount <= target_amount) NOT VALID;
    """)
    code, lines, err = _verify(capsys, _url(after_db))
    assert code == 1 and _failing(lines) == {"checks-0024"}
    evidence = lines["checks-0024"]["evidence"]
    assert "ck_goals_saved_le_target NOT VALID: 2 rows violate" in evidence
    assert "mita-integrity fix --apply --unsafe --select GOL003, then mita-integrity migrate validate" in evidence


def test_an_orphan_fails_the_orphan_and_percentage_lines(capsys: pytest.CaptureFixture[str],
                                                         baseline_db: Database) -> None:
    _sql(baseline_db, ORPHAN_HABIT)
    code, lines, err = _verify(capsys, _url(baseline_db))
    assert code == 1
    assert not lines["orphans"]["passed"] and "habits.user_id 1" in lines["orphans"]["evidence"]
    assert not lines["referential-integrity"]["passed"]
    assert lines["referential-integrity"]["evidence"].startswith("0.000 % (1 of 1 references orphaned")


def test_a_stamped_but_not_run_migration_is_named(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    _sql(baseline_db, "UPDATE alembic_version SET version_num = '0022_add_missing_fk_constraints'")
    code, lines, err = _verify(capsys, _url(baseline_db))
    assert not lines["migrations-applied"]["passed"]
    evidence = lines["migrations-applied"]["evidence"]
    assert "0022_add_missing_fk_constraints: fk_daily_plan_user_id" in evidence
    assert "subscriptions.deleted_at" in evidence


def test_a_no_action_fk_blocks_the_cascade_probe(capsys: pytest.CaptureFixture[str], after_db: Database) -> None:
    _sql(after_db, "ALTER TABLE moods DROP CONSTRAINT fk_moods_user_id; "
                   "ALTER TABLE moods ADD CONSTRAINT fk_moods_user_id FOREIGN KEY (user_id) REFERENCES users (id)")
    before = checksums(after_db)
    code, lines, err = _verify(capsys, _url(after_db))
    assert _failing(lines) == {"user-fk-cascade", "cascade-probe"}
    assert "fk_moods_user_id (NO ACTION)" in lines["user-fk-cascade"]["evidence"]
    assert lines["cascade-probe"]["evidence"] == "DELETE of the user blocked by fk_moods_user_id (moods)"
    assert checksums(after_db) == before


def test_a_wrong_trigger_fails_its_probe(capsys: pytest.CaptureFixture[str], after_db: Database) -> None:
    # A trigger that forgets soft deletes: the plan keeps counting a deleted transaction.
    _sql(after_db, """CREATE OR REPLACE FUNCTION update_daily_plan_spent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                UPDATE daily_plan SET spent_amount = spent_amount - OLD.amount WHERE user_id = OLD.user_id
                   AND category = OLD.category AND date = date_trunc('day', OLD.spent_at);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO daily_plan AS p (user_id, date, category, spent_amount)
                VALUES (NEW.user_id, date_trunc('day', NEW.spent_at), NEW.category, NEW.amount)
                ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
                DO UPDATE SET spent_amount = p.spent_amount + EXCLUDED.spent_amount;
            END IF;
            RETURN NULL;
        END $$""")
    code, lines, err = _verify(capsys, _url(after_db))
    assert _failing(lines) == {"spent-trigger"}
    assert "after soft delete spent_amount is 25, expected 0" in lines["spent-trigger"]["evidence"]
    # Any correct implementation passes: the contract's simplest form, instead of 0025's own.
    _sql(after_db, "DROP TRIGGER trg_transactions_daily_plan_spent ON transactions;" + STAND_IN_TRIGGER)
    code, lines, err = _verify(capsys, _url(after_db))
    assert code == 0, lines["spent-trigger"]
    _sql(after_db, "ALTER TABLE transactions DISABLE TRIGGER trg_transactions_daily_plan_spent")
    code, lines, err = _verify(capsys, _url(after_db))
    assert lines["spent-trigger"]["evidence"] == "trigger trg_transactions_daily_plan_spent is disabled"


def test_the_last_recorded_check_must_be_recent(capsys: pytest.CaptureFixture[str], after_db: Database) -> None:
    assert _verify(capsys, _url(after_db), "--max-age", "1h")[0] == 0
    _sql(after_db, "UPDATE integrity.runs SET finished_at = now() - interval '3 days'")
    code, lines, err = _verify(capsys, _url(after_db))
    assert _failing(lines) == {"recent-check"}
    assert "ago, older than 1 d 2 h" in lines["recent-check"]["evidence"]
    assert _verify(capsys, _url(after_db), "--max-age", "4d")[0] == 0
    assert main(["--db", _url(after_db), "verify", "--max-age", "soon"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: --max-age 'soon' is not a duration") and len(err.strip().splitlines()) == 1


def test_check_record_stores_a_run_that_runs_lists(capsys: pytest.CaptureFixture[str],
                                                   baseline_db: Database) -> None:
    url = _url(baseline_db)
    code = main(["--db", url, "check", "--record", "--format", "json"])
    out, err = capsys.readouterr()
    run_id = json.loads(out)["run_id"]
    assert code == 1 and f"check run {run_id} recorded in integrity.runs" in err  # SCH rules fail at the baseline
    assert main(["--db", url, "runs", "--format", "json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["id"], run["kind"], run["status"]) == (run_id, "check", "completed")
    assert run["summary"]["rules_run"] > 50 and run["summary"]["failing"] == run["summary"]["high"] + \
        run["summary"]["critical"] + run["summary"]["medium"] + run["summary"]["low"] + run["summary"]["info"]
    assert _sql(baseline_db, f"SELECT report->>'run_id' FROM integrity.runs WHERE id = '{run_id}'") == [(run_id,)]
    with connect(baseline_db) as conn, conn.cursor() as cur:
        (row,) = run_history.list_runs(cur, kind="check")
    s = row.summary
    failing = ", ".join(f"{s[k]} {k}" for k in ("critical", "high", "medium", "low", "info") if s[k])
    assert s["high"] and run_history.describe(row) == f"{failing} failing; {s['rules_run']} rules run"
    assert main(["--db", url, "verify", "--format", "json"]) == 1
    lines = {line["name"]: line for line in json.loads(capsys.readouterr().out)["lines"]}
    assert lines["recent-check"]["passed"] and run_id in lines["recent-check"]["evidence"]


def test_a_select_only_role_gets_failing_probes_and_no_traceback(capsys: pytest.CaptureFixture[str],
                                                                 after_db: Database) -> None:
    role = f"mita_ro_{after_db.dbname[-8:]}"
    _sql(after_db, f"CREATE ROLE {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
                   f"REVOKE CREATE ON DATABASE \"{after_db.dbname}\" FROM PUBLIC")
    before = checksums(after_db)
    try:
        url = _url(after_db, options=f"-c role={role}")
        code, lines, err = _verify(capsys, url)
        assert code == 1 and "Traceback" not in err and err == ""
        for name in PROBE_LINES:
            assert not lines[name]["passed"]
            assert f"cannot probe: role {role} lacks INSERT" in lines[name]["evidence"], lines[name]
        assert lines["calendar-unique"]["evidence"].startswith("uq_daily_plan_user_date_category present")
        assert not lines["recent-check"]["passed"]  # no privilege on the integrity schema: says so
        assert lines["recent-check"]["evidence"].startswith("could not check: permission denied")
        assert {n for n, line in lines.items() if line["passed"]} == {
            "orphans", "fk-0022", "user-fk-cascade", "calendar-duplicates", "checks-0024",
            "referential-integrity", "migrations-applied"}
        assert main(["--db", url, "check", "--record", "--select", "REF"]) == 3
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"role {role} lacks USAGE on schema integrity" in err, err
        assert checksums(after_db) == before
    finally:
        _sql(after_db, f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_check_record_without_create_privilege_is_one_line(capsys: pytest.CaptureFixture[str],
                                                            baseline_db: Database) -> None:
    role = f"mita_ro_{baseline_db.dbname[-8:]}"
    _sql(baseline_db, "DROP SCHEMA integrity CASCADE")  # a database mita-integrity's chain never ran on
    _sql(baseline_db, f"CREATE ROLE {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
                      f"REVOKE CREATE ON DATABASE \"{baseline_db.dbname}\" FROM PUBLIC")
    try:
        assert main(["--db", _url(baseline_db, options=f"-c role={role}"), "check", "--record"]) == 3
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert captured.out == "" and len(err.splitlines()) == 1
        assert f"role {role} lacks CREATE on the database" in err and "nothing was run" in err
        assert _sql(baseline_db, "SELECT to_regnamespace('integrity')") == [(None,)]
    finally:
        _sql(baseline_db, f"DROP OWNED BY {role}; DROP ROLE {role}")


def _orphan_numbers(lines: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Gives (orphans the `orphans` line counts, orphans the `referential-integrity` line counts)."""
    first = re.match(r"([\d,]+) orphaned rows", lines["orphans"]["evidence"])
    second = re.search(r"\(([\d,]+) of [\d,]+ references orphaned", lines["referential-integrity"]["evidence"])
    assert first and second, lines
    return int(first.group(1).replace(",", "")), int(second.group(1).replace(",", ""))


def test_orphans_past_a_validated_fk_fail_both_lines_with_one_count(capsys: pytest.CaptureFixture[str],
                                                                    after_db: Database) -> None:
    """Issues 12.9 and 16.2: verify counts orphans for real (a validated FK is bypassed by rows written under
    session_replication_role = replica), and its orphans and referential-integrity lines never contradict."""
    _sql(after_db, "INSERT INTO expenses (user_id, action, amount, date) VALUES ('42', 'spend', 5, '2026-01-01')")
    code, lines, err = _verify(capsys, _url(after_db))
    assert {"orphans", "referential-integrity"} <= _failing(lines)
    assert "expenses.user_id 1 (REF011)" in lines["orphans"]["evidence"]
    assert _orphan_numbers(lines) == (1, 1)

    _sql(after_db, """SET session_replication_role = replica;
        INSERT INTO daily_plan (id, user_id, date, category, created_at)
        VALUES ('30000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-0000000000ff',
                '2026-01-05 00:00+00', 'food', now());
        RESET session_replication_role;""")
    assert _sql(after_db, "SELECT convalidated FROM pg_constraint WHERE conname = 'fk_daily_plan_user_id'") == [(True,)]
    code, lines, err = _verify(capsys, _url(after_db))
    assert code == 1
    assert "daily_plan.user_id 1 (REF003)" in lines["orphans"]["evidence"]
    assert "fix --apply --select REF003" in lines["orphans"]["evidence"]
    assert _orphan_numbers(lines) == (2, 2)


def test_an_invalid_index_fails_migrations_applied(capsys: pytest.CaptureFixture[str], after_db: Database) -> None:
    """Issue 12.2: a failed CREATE INDEX CONCURRENTLY leaves an index that enforces nothing; verify says so."""
    with connect(after_db, autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_daily_plan_category_once ON daily_plan (category)")
    code, lines, err = _verify(capsys, _url(after_db))
    assert code == 1 and "migrations-applied" in _failing(lines)
    evidence = lines["migrations-applied"]["evidence"]
    assert "1 invalid index" in evidence and "ix_daily_plan_category_once" in evidence


def test_same_named_constraints_with_other_definitions_fail_verify(capsys: pytest.CaptureFixture[str],
                                                                   after_db: Database) -> None:
    """Issue 12.7: verify compares definitions, not names."""
    _sql(after_db, """ALTER TABLE goals DROP CONSTRAINT ck_goals_progress_le_100;
        ALTER TABLE goals ADD CONSTRAINT ck_goals_progress_le_100 CHECK (progress <= 100000);
        ALTER TABLE daily_plan DROP CONSTRAINT uq_daily_plan_user_date_category;
        ALTER TABLE daily_plan ADD CONSTRAINT uq_daily_plan_user_date_category
            UNIQUE NULLS NOT DISTINCT (user_id, date, category, created_at);""")
    code, lines, err = _verify(capsys, _url(after_db))
    assert {"checks-0024", "calendar-unique"} <= _failing(lines)
    assert "ck_goals_progress_le_100 on goals is CHECK (" in lines["checks-0024"]["evidence"]
    assert "not CHECK (progress <= 100)" in lines["checks-0024"]["evidence"]
    assert "(user_id, date, category, created_at)" in lines["calendar-unique"]["evidence"]
