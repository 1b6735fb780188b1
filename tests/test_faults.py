"""Faults: the server restarted (or our session terminated) in the middle of check, fix --apply and a migration;
one rule hitting statement_timeout; a report that cannot be written.

Each ends in one line on stderr and exit 3, never a traceback; the database stays consistent (the archive
and the data agree) and the same command, run again, finishes. Restarts happen on a throw-away cluster
of their own, so the session's server (and every other test's connections) are never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.migration import command as migrate
from mita_integrity.seed import SeedOptions, seed_database
from tests.support.pgcluster import start_cluster

from .conftest import PgServer
from .dbstate import archived, assert_nothing_lost, cli_url, row_counts
from .standby import activity, assert_one_line_error, finish, lock, one, start_cli, wait_until, waiting_on_lock

HEAD = "0027_harden_spent_trigger"
ORPHANS = 4000
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"


@pytest.fixture(scope="module")
def own_server(pg: PgServer) -> Iterator[PgServer]:
    """A throw-away cluster of this module's own (the session's server is shared: it is never restarted)."""
    if pg.cluster is None:
        pytest.skip("MITA_TEST_DATABASE_URL is set: no binaries to start a cluster of our own")
    # Commits flushed at once, as in production: a batch the client saw committed survives the crash.
    cluster = start_cluster(pg.cluster.bindir, settings={"synchronous_commit": "on"})
    server = PgServer(cluster.url, cluster)
    template = server.create_database("mita_fault_tpl")
    migrate.upgrade(template, migrate.BASELINE)
    yield server
    cluster.destroy()


@pytest.fixture
def fault_db(own_server: PgServer) -> Database:
    """A database at the baseline on the throw-away cluster, seeded with every kind of defect."""
    db = own_server.create_database(f"mita_f_{uuid.uuid4().hex[:10]}", template="mita_fault_tpl")
    with connect(db) as conn:
        seed_database(conn, SeedOptions(users=30, days=10, seed=5, corrupt=True))
    return db


def _restart(server: PgServer, mode: str) -> None:
    assert server.cluster is not None
    server.cluster.stop(mode)
    server.cluster.start()


def _check_json(db: Database, *args: str) -> tuple[int, dict[str, object], str]:
    code, out, err = finish(start_cli("--db", cli_url(db), "check", "--format", "json", "--fail-on", "never", *args))
    return code, (json.loads(out) if code == 0 else {}), err


# -- (a) the server goes away in the middle of a command ---------------------------------------------------------

def test_check_when_the_server_restarts_is_one_line_and_a_rerun_completes(own_server: PgServer,
                                                                          fault_db: Database) -> None:
    locker = lock(fault_db, "habits")
    try:
        proc = start_cli("--db", cli_url(fault_db), "check", "--select", "REF001,REF005", "--lock-timeout", "120")
        wait_until("the check to wait for habits", lambda: waiting_on_lock(fault_db))
        _restart(own_server, "fast")
    finally:
        locker.close()
    assert_one_line_error(*finish(proc), "lost the connection to the database during check", "nothing was changed")
    code, report, err = _check_json(fault_db, "--select", "REF001,REF005")
    assert code == 0, err
    assert {r["code"]: r["status"] for r in report["results"]} == {"REF001": "fail", "REF005": "fail"}  # type: ignore[index]


def test_check_whose_session_is_terminated_is_one_line(baseline_db: Database) -> None:
    """pg_terminate_backend from another session (an operator, or a pooler's clean-up): the same one line."""
    locker = lock(baseline_db, "habits")
    try:
        proc = start_cli("--db", cli_url(baseline_db), "check", "--select", "REF005", "--lock-timeout", "120")
        wait_until("the check to wait for habits", lambda: waiting_on_lock(baseline_db))
        assert one(baseline_db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND wait_event_type = 'Lock'") == 1
        assert_one_line_error(*finish(proc), "lost the connection", "terminating connection due to administrator")
    finally:
        locker.close()


def test_fix_apply_when_the_server_crashes_keeps_archive_and_data_agreeing(own_server: PgServer,
                                                                           fault_db: Database) -> None:
    with connect(fault_db) as conn:
        conn.execute(f"""INSERT INTO moods (id, user_id, date, mood)
                         SELECT md5('m' || g)::uuid, md5('ghost' || g)::uuid, date '2026-01-01' + g % 30, 'ok'
                           FROM generate_series(1, {ORPHANS}) g""".encode())
        conn.commit()
    before = row_counts(fault_db)

    def archived_moods() -> int:
        return archived(fault_db).get(("moods", "delete"), 0)

    proc = start_cli("--db", cli_url(fault_db), "fix", "--apply", "--select", "REF010", "--batch-size", "10")
    wait_until("some batches to commit", lambda: archived_moods() >= 300 or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, "the fix finished before the crash: make the batches smaller"
    _restart(own_server, "immediate")  # a crash: no shutdown checkpoint, recovery from WAL
    code, out, err = finish(proc)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and "error: lost the connection to the database" in lines[-1], err
    assert "batch by batch" in lines[-1]
    assert_one_line_error(code, out, err)  # no "Exception ignored" block from the snapshot's cursor either

    done = archived_moods()
    assert 300 <= done < ORPHANS
    assert one(fault_db, "SELECT count(*) FROM moods") == before["moods"] - done
    assert_nothing_lost(before, row_counts(fault_db), archived(fault_db))

    code, out, err = finish(start_cli("--db", cli_url(fault_db), "fix", "--apply", "--select", "REF010",
                                      "--format", "json"))
    assert code == 0, err
    assert one(fault_db, "SELECT count(*) FROM moods m WHERE NOT EXISTS "
                         "(SELECT 1 FROM users u WHERE u.id = m.user_id)") == 0
    assert_nothing_lost(before, row_counts(fault_db), archived(fault_db))


def test_migration_when_the_server_restarts_is_one_line_and_a_rerun_reaches_head(own_server: PgServer,
                                                                                 fault_db: Database) -> None:
    before = row_counts(fault_db)
    locker = lock(fault_db, "moods")  # only 0026 touches moods: 0022-0025 run, then it waits
    try:
        proc = start_cli("--db", cli_url(fault_db), "migrate", "upgrade", "head",
                         env={"MITA_MIGRATION_LOCK_TIMEOUT_MS": "120000"})
        wait_until("the migration to wait for moods", lambda: waiting_on_lock(fault_db) or proc.poll() is not None,
                   timeout=120, explain=lambda: activity(fault_db))
        assert proc.poll() is None, finish(proc)
        _restart(own_server, "fast")
    finally:
        locker.close()
    code, out, err = finish(proc)
    assert_one_line_error(code, "", err.splitlines()[-1] if err.strip() else err, "connection")
    assert "Traceback" not in out + err
    assert one(fault_db, "SELECT version_num FROM integrity.alembic_version") != HEAD
    assert_nothing_lost(before, {t: n for t, n in row_counts(fault_db).items() if t in before}, archived(fault_db))

    code, out, err = finish(start_cli("--db", cli_url(fault_db), "migrate", "upgrade", "head"))
    assert code == 0, err
    assert one(fault_db, "SELECT version_num FROM integrity.alembic_version") == HEAD
    assert_nothing_lost(before, {t: n for t, n in row_counts(fault_db).items() if t in before}, archived(fault_db))


def test_a_migration_connection_the_server_ended_logs_no_traceback(baseline_db: Database,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """CI (stop 26): the server restarted while a migration's transaction pinned its settings; psycopg's error
    went past SQLAlchemy, which then rolled back the dead connection as it went back to the pool, failed, and
    logged 'Exception during reset or similar' with a traceback on stderr, above the one-line error."""
    import psycopg

    engine = migrate.engine_for(baseline_db)
    with pytest.raises(psycopg.OperationalError), engine.connect() as conn:
        pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(autocommit=True, **baseline_db.connect_kwargs()) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with conn.begin():  # the pin (SET LOCAL ...) meets the ended session
            conn.exec_driver_sql("SELECT 1")
    engine.dispose()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")] == []


# -- (b) one rule hits statement_timeout ---------------------------------------------------------------------------

def test_a_rule_that_hits_statement_timeout_is_an_error_and_the_others_are_fine(
        capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute("INSERT INTO habits (id, user_id, title) VALUES (gen_random_uuid(), gen_random_uuid(), 'walk')")
        conn.execute("INSERT INTO daily_plan (id, user_id, date, category) "
                     "VALUES (gen_random_uuid(), gen_random_uuid(), date_trunc('day', now()), 'food')")
        conn.commit()
    locker = lock(baseline_db, "habits")  # the habits pass waits for it until statement_timeout cancels it
    try:
        code = main(["--db", cli_url(baseline_db), "check", "--format", "json", "--select", "REF001,REF003,REF005",
                     "--statement-timeout", "1", "--lock-timeout", "60"])
    finally:
        locker.close()
    out, err = capsys.readouterr()
    results = {r["code"]: r for r in json.loads(out)["results"]}
    assert results["REF005"]["status"] == "error" and "statement timeout" in results["REF005"]["reason"]
    assert "--statement-timeout" in results["REF005"]["reason"]
    assert (results["REF001"]["status"], results["REF003"]["status"], results["REF003"]["count"]) == ("pass", "fail", 1)
    # REF003's critical finding is still reported; the error is a blind spot, so the run exits 3 (DESIGN, 14.4).
    assert code == 3


# -- (c) a report that cannot be written: refused before any work ------------------------------------------------

def _read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through any mode bits; sysfs lets no one create a file
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("kind", ["missing-folder", "under-a-file", "read-only-folder", "read-only-folder-many",
                                  "disk-full"])
def test_an_unwritable_output_is_refused_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         baseline_db: Database, kind: str) -> None:
    formats = ["--format", "json"] + (["--format", "html"] if kind.endswith("many") else [])
    output = {
        "missing-folder": tmp_path / "no" / "such" / "report.json",
        "under-a-file": Path("/etc/hostname/report.json"),
        "read-only-folder": _read_only_folder(tmp_path) / "report.json",
        "read-only-folder-many": _read_only_folder(tmp_path),
        "disk-full": Path("/dev/full"),
    }[kind]
    why = {"missing-folder": "does not exist", "under-a-file": "is not a folder", "disk-full": "No space left",
           "read-only-folder": "Permission denied", "read-only-folder-many": "Permission denied"}
    # Against a server that is not there: the output is refused first, so no connection is even tried.
    code = main(["--db", UNREACHABLE, "check", *formats, "--output", str(output)])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, "cannot write the report", why[kind])
    # Against the real database with --record: nothing recorded.
    code = main(["--db", cli_url(baseline_db), "check", *formats, "--output", str(output), "--record"])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, "cannot write the report", "nothing was run")
    assert one(baseline_db, "SELECT to_regclass('integrity.runs') IS NULL") is True


def test_a_writable_output_is_left_as_it_was_by_the_probe(capsys: pytest.CaptureFixture[str],
                                                          baseline_db: Database) -> None:
    with tempfile.TemporaryDirectory() as folder:
        existing = Path(folder) / "old.json"
        existing.write_text("previous report")
        code = main(["--db", UNREACHABLE, "check", "--format", "json", "--output", str(existing)])
        capsys.readouterr()
        assert code == 3 and existing.read_text() == "previous report"  # probed, not truncated
        assert sorted(p.name for p in Path(folder).iterdir()) == ["old.json"]  # no probe file left behind
        assert main(["--db", cli_url(baseline_db), "check", "--format", "json", "--select", "REF001",
                     "--output", folder]) == 0
        capsys.readouterr()
        assert len(list(Path(folder).glob("*.json"))) == 2
