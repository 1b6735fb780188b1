"""Issue 12: migrations that cannot hurt production — and issue 16.11's message when one is cut short.

Each test names the item it covers. They run on PostgreSQL 16 (embedded) and 15 (MITA_TEST_PG_BINDIR).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database import backup, embedded
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.errors import DatabaseStateError
from mita_integrity.migration import command as migrate
from mita_integrity.migration import guards as migrate_guards
from mita_integrity.migrations.frozen import cleanup_v1, online_v1, r0023
from mita_integrity.seed import SeedOptions, seed_database

from .dbstate import cli_url, row_counts
from .dbstate import run_sql as _sql

HEAD = "0027_harden_spent_trigger"
MIGRATION_LOCK = getattr(migrate_guards, "LOCK_KEY", 0x6D696772)  # the advisory lock of `migrate` (12.5)
ANN = "00000000-0000-0000-0000-000000000001"


def _cli(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what came before (a migration's progress lines) is not this command's
    code = main(["--db", cli_url(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> str:
    """Gives the command's error: one line, the last, after any progress lines of what ran before it."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    assert code == 3 and len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("error: "), err
    return errors[0]


def _tables(db: Database) -> int:
    return int(_sql(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'")[0][0])


def _invalid_indexes(db: Database) -> list[str]:
    return [r[0] for r in _sql(db, "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                                   "WHERE NOT x.indisvalid ORDER BY 1")]


# -- 12.1 ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["-1", "base", "0020_add_user_answers", "-3", "0021_add_habit_completions@-1"])
def test_12_1_downgrade_below_the_baseline_is_refused_in_one_line(capsys: pytest.CaptureFixture[str],
                                                                  baseline_db: Database, target: str) -> None:
    _sql(baseline_db, f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h')")
    code, out, err = _cli(capsys, baseline_db, "migrate", "downgrade", target)
    line = _one_line_error(code, err)
    assert "below the baseline 0021_add_habit_completions" in line, line
    assert _tables(baseline_db) == 26 and _sql(baseline_db, "SELECT count(*) FROM users") == [(1,)]
    assert migrate.current(baseline_db).revision == migrate.BASELINE


def test_12_1_downgrade_base_from_head_changes_nothing(capsys: pytest.CaptureFixture[str],
                                                       baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "head")
    code, out, err = _cli(capsys, baseline_db, "migrate", "downgrade", "base")
    assert "refused" in _one_line_error(code, err)
    assert migrate.current(baseline_db).revision == HEAD and _tables(baseline_db) == 26


# -- 12.2 ----------------------------------------------------------------------------------------------------------
def test_12_2_a_build_that_waits_for_an_old_snapshot_is_never_reported_as_success(
        baseline_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """An open REPEATABLE READ transaction makes CREATE INDEX CONCURRENTLY hit its lock timeout, which leaves
    an invalid index; IF NOT EXISTS used to skip it on the retry and the upgrade said success."""
    monkeypatch.setattr(online_v1, "DEFAULT_LOCK_TIMEOUT_MS", 300)  # read per run (the old code read it at import)
    monkeypatch.setattr(online_v1, "ATTEMPTS", 2)
    blocker = connect(baseline_db)
    try:
        blocker.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        blocker.execute("SELECT count(*) FROM users").fetchone()  # takes the snapshot the build waits for
        with pytest.raises(DatabaseStateError, match="ix_subscriptions_deleted_at"):
            migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")
    finally:
        blocker.rollback()
        blocker.close()
    assert migrate.current(baseline_db).revision == migrate.BASELINE  # not recorded
    assert _invalid_indexes(baseline_db) == []  # nothing invalid left behind
    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")  # the long transaction has ended
    assert migrate.current(baseline_db).revision == "0022_add_missing_fk_constraints"
    assert _invalid_indexes(baseline_db) == []
    assert _sql(baseline_db, "SELECT count(*) FROM pg_class WHERE relname = 'ix_subscriptions_deleted_at'") == [(1,)]


def test_12_2_and_12_8_an_invalid_index_at_head_is_rebuilt_by_the_next_upgrade(
        capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "head")
    _sql(baseline_db, f"""INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
        INSERT INTO subscriptions (id, user_id, platform, receipt) VALUES
          ('40000000-0000-0000-0000-000000000001', '{ANN}', 'ios', '{{}}'),
          ('40000000-0000-0000-0000-000000000002', '{ANN}', 'ios', '{{}}');
        DROP INDEX ix_subscriptions_deleted_at;""")
    with connect(baseline_db, autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_subscriptions_deleted_at ON subscriptions (user_id)")
    assert _invalid_indexes(baseline_db) == ["ix_subscriptions_deleted_at"]
    code, out, err = _cli(capsys, baseline_db, "migrate", "upgrade", "head")
    assert code == 0, err
    assert "rebuilt ix_subscriptions_deleted_at" in err
    assert _invalid_indexes(baseline_db) == []
    definition = _sql(baseline_db, "SELECT pg_get_indexdef('ix_subscriptions_deleted_at'::regclass)")[0][0]
    assert "(deleted_at) WHERE (deleted_at IS NULL)" in definition and "UNIQUE" not in definition


# -- 12.3 ----------------------------------------------------------------------------------------------------------
def _server_tool(name: str) -> Path:
    """The server's own tool (what an operator restores with): the test cluster's bin directory."""
    return Path(os.environ.get("MITA_TEST_PG_BINDIR") or embedded.bin_dir()) / name


def test_12_3_the_backup_restores_with_the_servers_own_pg_restore(capsys: pytest.CaptureFixture[str], pg: Any,
                                                                  baseline_db: Database, tmp_path: Path) -> None:
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=8, days=3, seed=11))
    before = row_counts(baseline_db)
    dump = tmp_path / "before.dump"
    code, out, err = _cli(capsys, baseline_db, "migrate", "upgrade", "head", "--backup", str(dump))
    assert code == 0, err
    assert f"backup written to {dump} by pg_dump {pg.major}" in err
    assert "waits at most 30 s for a share lock" in err
    restored = pg.create_database(f"mita_restore_{os.getpid()}_{int(time.time())}")
    try:
        proc = subprocess.run([str(_server_tool("pg_restore")), "--no-owner", "-d",
                               cli_url(restored), str(dump)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert row_counts(restored) == before
        assert migrate.current(restored).revision == migrate.BASELINE
    finally:
        pg.drop_database(restored.parsed.params["dbname"])


def test_12_3_an_existing_backup_is_never_overwritten_without_force(capsys: pytest.CaptureFixture[str],
                                                                    baseline_db: Database, tmp_path: Path) -> None:
    dump = tmp_path / "before.dump"
    dump.write_bytes(b"an earlier pre-upgrade dump")
    code, out, err = _cli(capsys, baseline_db, "migrate", "upgrade", "--backup", str(dump))
    assert "exists already" in _one_line_error(code, err) and "--force" in err
    assert dump.read_bytes() == b"an earlier pre-upgrade dump"
    assert migrate.current(baseline_db).revision == migrate.BASELINE
    code, out, err = _cli(capsys, baseline_db, "migrate", "upgrade", "0022_add_missing_fk_constraints",
                          "--backup", str(dump), "--force")
    assert code == 0, err
    assert dump.read_bytes()[:5] == b"PGDMP"


def test_12_3_the_backup_waits_for_a_lock_a_bounded_time_and_says_for_what(
        baseline_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup, "LOCK_WAIT_SECONDS", 1, raising=False)
    holder = connect(baseline_db)
    holder.execute("LOCK TABLE goals IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(25, holder.rollback)  # the old code waited: let it end rather than hang
    release.start()
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseStateError, match="waiting 1 s for a share lock") as caught:
            migrate.upgrade(baseline_db, "head", backup=tmp_path / "before.dump")
        assert time.monotonic() - started < 20
        assert "nothing was migrated" in caught.value.one_line()
    finally:
        release.cancel()
        holder.rollback()
        holder.close()
    assert not (tmp_path / "before.dump").exists()
    assert migrate.current(baseline_db).revision == migrate.BASELINE


def test_12_3_the_dump_tool_is_the_servers_major_where_installed(pg: Any) -> None:
    tool = backup.dump_tool(pg.major)
    assert tool.major == pg.major and tool.matches_server
    assert tool.pg_restore.name == "pg_restore" and tool.pg_restore.exists()


# -- 12.4 ----------------------------------------------------------------------------------------------------------
def test_12_4_a_failed_stamp_changes_nothing(baseline_db: Database) -> None:
    _sql(baseline_db, """CREATE FUNCTION refuse_version() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'no new version today'; END $$;
        CREATE TRIGGER refuse_version BEFORE INSERT ON integrity.alembic_version
            FOR EACH ROW EXECUTE FUNCTION refuse_version();""")
    with pytest.raises(DatabaseStateError, match="no new version today"):
        migrate.stamp(baseline_db, "0022_add_missing_fk_constraints")
    assert _sql(baseline_db, "SELECT version_num FROM integrity.alembic_version") == [(migrate.BASELINE,)]
    assert _sql(baseline_db, "SELECT version_num FROM public.alembic_version") == [(migrate.BASELINE,)]


def test_12_4_a_long_revision_id_stamps_at_the_baseline_and_0025s_advice_works(baseline_db: Database) -> None:
    """A version_num of varchar(32) (Alembic's default) and 0025's id of 33 characters: the stamp used to fail
    half-way. The application's own table keeps its width: only the chain's table is widened."""
    _sql(baseline_db, "ALTER TABLE integrity.alembic_version ALTER COLUMN version_num TYPE varchar(32)")
    assert migrate.stamp(baseline_db, "0025_add_daily_plan_spent_trigger").to_revision == \
        "0025_add_daily_plan_spent_trigger"
    assert [r.code for r in run_check(baseline_db, CheckRequest(select=["SCH009"])).results if r.failed]
    migrate.stamp(baseline_db, "0024_add_check_constraints")  # so that 0025 runs, finds no key, and advises
    with pytest.raises(DatabaseStateError) as caught:
        migrate.upgrade(baseline_db, "head")
    advice = re.search(r"`mita-integrity migrate downgrade (\S+)`", caught.value.one_line())
    assert advice, caught.value.one_line()
    migrate.downgrade(baseline_db, advice.group(1))  # exactly what it says
    migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == HEAD
    assert not [r for r in run_check(baseline_db, CheckRequest(select=["SCH009"])).results if r.failed]
    assert _sql(baseline_db, "SELECT version_num, pg_typeof(version_num)::text, "
                "(SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = 'alembic_version' AND column_name = 'version_num') FROM public.alembic_version") \
        == [(migrate.BASELINE, "character varying", 32)]


# -- 12.5 ----------------------------------------------------------------------------------------------------------
def test_12_5_a_second_migration_is_refused_in_one_line(capsys: pytest.CaptureFixture[str],
                                                        baseline_db: Database) -> None:
    with connect(baseline_db, autocommit=True) as first:  # holds the lock as a running migration does
        first.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        for args in (("upgrade", "head"), ("downgrade", "0021_add_habit_completions_table"), ("stamp", HEAD)):
            code, out, err = _cli(capsys, baseline_db, "migrate", *args)
            line = _one_line_error(code, err)
            assert "another migration is running on this database" in line and "nothing was changed" in line
    assert migrate.current(baseline_db).revision == migrate.BASELINE
    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")  # the lock went with the first one


def test_12_5_and_12_1_adopt_takes_the_lock_and_the_floor_holds_after_it(capsys: pytest.CaptureFixture[str],
                                                                         baseline_db: Database) -> None:
    """A database an earlier mita-integrity moved (our id in the application's alembic_version): `migrate adopt`
    waits for no running migration (one line, nothing moved), and once adopted the baseline is still the floor."""
    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")
    _sql(baseline_db, "ALTER TABLE public.alembic_version ALTER COLUMN version_num TYPE varchar(64); "
                      "UPDATE public.alembic_version SET version_num = '0022_add_missing_fk_constraints'; "
                      "DROP TABLE integrity.alembic_version")
    with connect(baseline_db, autocommit=True) as first:
        first.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        code, out, err = _cli(capsys, baseline_db, "migrate", "adopt")
        line = _one_line_error(code, err)
        assert "migrate adopt: another migration is running on this database" in line, line
    assert _sql(baseline_db, "SELECT version_num FROM public.alembic_version") == \
        [("0022_add_missing_fk_constraints",)]
    assert _sql(baseline_db, "SELECT to_regclass('integrity.alembic_version')") == [(None,)]
    code, out, err = _cli(capsys, baseline_db, "migrate", "adopt")
    assert code == 0 and out.startswith("moved: integrity.alembic_version 0022_add_missing_fk_constraints"), err
    for target in ("base", "-2", "0020_add_user_answers"):
        code, out, err = _cli(capsys, baseline_db, "migrate", "downgrade", target)
        assert "below the baseline" in _one_line_error(code, err)
    assert migrate.current(baseline_db).revision == "0022_add_missing_fk_constraints" and _tables(baseline_db) == 26
    migrate.downgrade(baseline_db, "-1")
    assert migrate.current(baseline_db).revision == migrate.BASELINE and _tables(baseline_db) == 26
    assert _sql(baseline_db, "SELECT version_num FROM public.alembic_version") == [(migrate.BASELINE,)]


def test_12_5_two_upgrades_at_once_end_cleanly(baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=20, days=10, seed=4, corrupt=True))
    exe = Path(sys.executable).with_name("mita-integrity")
    command = [str(exe), "--db", cli_url(baseline_db), "migrate", "upgrade", "head"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.returncode, *p.communicate(timeout=300)) for p in procs]
    results = [(p.returncode, out, err) for p, (_, out, err) in zip(procs, results, strict=True)]
    for code, _, err in results:
        assert "unexpected" not in err and "Traceback" not in err, err
        assert code == 0 or (code == 3 and "another migration is running" in err), err
    assert any(code == 0 and "upgraded:" in out for code, out, _ in results)
    assert migrate.current(baseline_db).revision == HEAD


# -- 12.6 ----------------------------------------------------------------------------------------------------------
def test_12_6_downgrading_0022_keeps_soft_deletes(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")
    _sql(baseline_db, f"""INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
        INSERT INTO subscriptions (id, user_id, platform, receipt, deleted_at)
        SELECT ('40000000-0000-0000-0000-00000000000' || g)::uuid, '{ANN}', 'ios', '{{}}',
               CASE WHEN g <= 3 THEN ('2026-01-0' || g || ' 10:00+00')::timestamptz END
          FROM generate_series(1, 5) g;""")
    code, out, err = _cli(capsys, baseline_db, "migrate", "downgrade", "0021_add_habit_completions_table")
    line = _one_line_error(code, err)
    assert "3 subscriptions are soft-deleted" in line and "--force" in line
    assert migrate.current(baseline_db).revision == "0022_add_missing_fk_constraints"

    code, out, err = _cli(capsys, baseline_db, "migrate", "downgrade", "0021_add_habit_completions_table", "--force")
    assert code == 0, err
    assert "3 soft-deleted subscriptions now read as live" in err
    assert _sql(baseline_db, "SELECT count(*) FROM integrity.subscriptions_deleted_at") == [(3,)]
    assert not _sql(baseline_db, "SELECT 1 FROM information_schema.columns WHERE table_name = 'subscriptions' "
                                 "AND column_name = 'deleted_at'")

    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")
    assert _sql(baseline_db, "SELECT id::text, deleted_at::text FROM subscriptions WHERE deleted_at IS NOT NULL "
                             "ORDER BY id") == [(f"40000000-0000-0000-0000-00000000000{g}",
                                                 f"2026-01-0{g} 10:00:00+00") for g in (1, 2, 3)]
    assert _sql(baseline_db, "SELECT to_regclass('integrity.subscriptions_deleted_at')") == [(None,)]


# -- 12.7 ----------------------------------------------------------------------------------------------------------
def test_12_7_a_same_named_check_with_another_definition_is_refused(baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "0023_add_unique_constraint_daily_plan")
    _sql(baseline_db, "ALTER TABLE goals ADD CONSTRAINT ck_goals_progress_le_100 CHECK (progress <= 100000)")
    with pytest.raises(DatabaseStateError, match=r"ck_goals_progress_le_100 on goals is CHECK \(.*100000.*\), "
                                                 r"not CHECK \(progress <= 100\)"):
        migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == "0023_add_unique_constraint_daily_plan"
    assert not _sql(baseline_db, "SELECT 1 FROM pg_constraint WHERE conname = 'ck_goals_saved_le_target'")
    _sql(baseline_db, "ALTER TABLE goals DROP CONSTRAINT ck_goals_progress_le_100")
    migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == HEAD


def test_12_7_a_same_named_unique_key_on_other_columns_is_refused(baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "0022_add_missing_fk_constraints")
    _sql(baseline_db, "ALTER TABLE daily_plan ADD CONSTRAINT uq_daily_plan_user_date_category "
                      "UNIQUE (user_id, date, category, created_at)")
    with pytest.raises(DatabaseStateError, match=r"is on \(user_id, date, category, created_at\), not UNIQUE NULLS "
                                                 r"NOT DISTINCT \(user_id, date, category\)"):
        migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == "0022_add_missing_fk_constraints"
    # Stamped past 0023 with that key, 0025 refuses too rather than install a trigger that miscounts.
    migrate.stamp(baseline_db, "0024_add_check_constraints")
    with pytest.raises(DatabaseStateError, match="another definition"):
        migrate.upgrade(baseline_db, "head")
    assert not _sql(baseline_db, "SELECT 1 FROM pg_proc WHERE proname = 'update_daily_plan_spent'")


# -- 12.8 ----------------------------------------------------------------------------------------------------------
def test_12_8_a_killed_downgrades_swap_key_is_removed_by_the_next_upgrade(capsys: pytest.CaptureFixture[str],
                                                                          baseline_db: Database) -> None:
    """What 0026's downgrade leaves when killed between its steps: the NO ACTION swap key beside the original."""
    migrate.upgrade(baseline_db, "head")
    _sql(baseline_db, "ALTER TABLE ai_analysis_snapshots ADD CONSTRAINT ai_analysis_snapshots_user_id_fkey_swap "
                      "FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE NO ACTION NOT VALID")
    code, out, err = _cli(capsys, baseline_db, "migrate", "upgrade", "head")
    assert code == 0, err
    assert "dropped ai_analysis_snapshots_user_id_fkey_swap" in err
    keys = _sql(baseline_db, "SELECT conname::text, confdeltype::text FROM pg_constraint "
                             "WHERE conrelid = 'public.ai_analysis_snapshots'::regclass AND contype = 'f' ORDER BY 1")
    assert keys == [("ai_analysis_snapshots_user_id_fkey", "c")]


def test_12_8_a_killed_downgrade_is_swept_for_real(baseline_db: Database) -> None:
    """A real SIGKILL of `migrate downgrade` in 0026's swap: the next `upgrade head` leaves no leftover."""
    migrate.upgrade(baseline_db, "head")
    _sql(baseline_db, f"""INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
        INSERT INTO ai_analysis_snapshots (user_id, created_at)
        SELECT '{ANN}', now() FROM generate_series(1, 200000);""")
    exe = Path(sys.executable).with_name("mita-integrity")
    proc = subprocess.Popen([str(exe), "--db", cli_url(baseline_db), "migrate", "downgrade", "-1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _sql(baseline_db, "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%\\_swap'")[0][0]:
                break
            time.sleep(0.02)
        killed = proc.poll() is None
        proc.kill()
    finally:
        proc.wait(timeout=30)
    if not killed:
        pytest.skip("the downgrade finished before it could be killed")
    migrate.upgrade(baseline_db, "head")
    assert _sql(baseline_db, "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%\\_swap'") == [(0,)]
    assert _invalid_indexes(baseline_db) == []
    assert not [r for r in run_check(baseline_db, CheckRequest(select=["SCH008", "SCH009"])).results if r.failed]


# -- 16.11 ---------------------------------------------------------------------------------------------------------
def test_16_11_a_connection_lost_mid_upgrade_names_the_step_and_what_was_kept(
        capsys: pytest.CaptureFixture[str], baseline_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server goes away in 0023's clean-up (counting its candidates), after 0022 completed and was recorded."""
    real = cleanup_v1._count

    def crash_in_0023(reader: psycopg.Connection[Any], query: str) -> int:
        if query == r0023.STEPS[0].candidates:
            reader.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return real(reader, query)

    monkeypatch.setattr(cleanup_v1, "_count", crash_in_0023)
    code, out, err = _cli(capsys, baseline_db, "migrate", "upgrade", "head")
    line = _one_line_error(code, err)
    assert line.startswith("error: migrate upgrade head in 0023_add_unique_constraint_daily_plan: lost the "
                           "connection to the database"), line
    assert "completed and kept: 0022_add_missing_fk_constraints" in line
    assert "re-run `mita-integrity migrate upgrade head`" in line and "continues" in line
    assert "nothing was changed" not in line
    assert migrate.current(baseline_db).revision == "0022_add_missing_fk_constraints"
    monkeypatch.setattr(cleanup_v1, "_count", real)
    migrate.upgrade(baseline_db, "head")
    assert migrate.current(baseline_db).revision == HEAD


def test_0024_clean_up_of_an_over_saved_goal_with_stale_progress_completes(baseline_db: Database) -> None:
    """0024 adds its CHECKs NOT VALID and then recomputes stale progress (GOL001). A goal saved past its target
    (a person's, GOL003) with a stale progress made that update violate the NOT VALID saved ≤ target CHECK, and
    the whole upgrade failed with CheckViolation. The recompute now runs before the CHECKs exist; the over-saved
    goal is left to a person with its constraint NOT VALID, and the migration completes."""
    _sql(baseline_db, f"""
        INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
        INSERT INTO goals (id, user_id, title, target_amount, saved_amount, progress) VALUES
          ('20000000-0000-0000-0000-000000000002', '{ANN}', 'over', 100, 150, 0),
          ('20000000-0000-0000-0000-000000000003', '{ANN}', 'stale', 100, 50, 0);""")
    migrate.upgrade(baseline_db, "head")
    with connect(baseline_db) as conn:
        progress = conn.execute("SELECT title, progress FROM goals ORDER BY title").fetchall()
        validated = conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE conname IN "
                                 "('ck_goals_saved_le_target', 'ck_goals_progress_le_100') ORDER BY 1").fetchall()
        revision = conn.execute("SELECT version_num FROM integrity.alembic_version").fetchone()
    assert [(t, float(p)) for t, p in progress] == [("over", 100.0), ("stale", 50.0)]
    assert validated == [("ck_goals_progress_le_100", True), ("ck_goals_saved_le_target", False)]
    assert revision == (HEAD,)
