"""`check` on a hot standby: the primary's findings, recovery conflicts retried in a new snapshot, and the
commands that write refused in one line.

The standby streams from the session's server (pg_basebackup -R) with max_standby_streaming_delay = 0,
so replay cancels a conflicting query at once: the harshest setting a replica can have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from mita_integrity.check import engine
from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.seed import SeedOptions, seed_database
from tests.support.pgcluster import Cluster, start_standby

from .conftest import PgServer
from .dbstate import cli_url
from .standby import (
    CANCELLED,
    assert_one_line_error,
    finish,
    flush_wal,
    lock,
    one,
    replay_cancels,
    start_cli,
    wait_replayed,
    wait_until,
    waiting_on_lock,
)

RULES = "REF001,REF005"  # transactions, then habits: two row passes, in this order


@pytest.fixture(scope="module")
def standby_cluster(pg: PgServer) -> Iterator[Cluster]:
    if pg.cluster is None:
        pytest.skip("MITA_TEST_DATABASE_URL is set: no cluster of our own to make a standby of")
    cluster = start_standby(pg.cluster, settings={"max_standby_streaming_delay": "0", "hot_standby_feedback": "off"})
    yield cluster
    cluster.destroy()


@pytest.fixture
def seeded(baseline_db: Database) -> Database:
    """The test's database on the primary, at the baseline, seeded with every kind of defect."""
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=30, days=10, seed=7, corrupt=True))
    # The seeding's dead rows, vacuumed now: pruned later (by the primary's own check reading those pages, or
    # by autovacuum), their replay would cancel whatever the standby reads at that moment, with
    # max_standby_streaming_delay = 0. The tests below make their conflicts where they want them.
    with psycopg.connect(autocommit=True, **baseline_db.connect_kwargs()) as conn:
        conn.execute("VACUUM")
    return baseline_db


@pytest.fixture
def replica(seeded: Database, standby_cluster: Cluster) -> Database:
    """The same database on the standby, once the standby has replayed the seeding."""
    params = {**seeded.parsed.params, "port": str(standby_cluster.port)}
    db = Database.from_url(cli_url(seeded), origin="test")
    db = Database(type(db.parsed)(params=params, dropped=db.parsed.dropped), "test")
    wait_replayed(seeded, db)
    assert one(db, "SELECT pg_is_in_recovery()") is True
    return db


def _check(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, dict[str, Any]]:
    for attempt in range(3):
        code = main(["--db", cli_url(db), "check", "--format", "json", "--fail-on", "never", *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        # Replay may end the session while it is still starting (FATAL at connect, before any pass): the command
        # then refuses in one line. That is the server's race, not what these tests ask; the check runs again.
        if out or "conflict with recovery" not in err or attempt == 2:
            break
    assert out, err
    return code, json.loads(out)


def _findings(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["code"], r["table"], r["status"], r["count"], r["groups"], tuple(sorted(r["sample"])), r["reason"])
            for r in report["results"]]


def test_check_on_the_standby_reports_what_the_primary_does(capsys: pytest.CaptureFixture[str], seeded: Database,
                                                            replica: Database) -> None:
    on_primary = main(["--db", cli_url(seeded), "check", "--format", "json"])
    primary = json.loads(capsys.readouterr().out)
    on_standby = main(["--db", cli_url(replica), "check", "--format", "json"])
    standby = json.loads(capsys.readouterr().out)
    assert on_standby == on_primary == 2  # the seeded defects include critical ones
    assert _findings(standby) == _findings(primary)
    assert sum(r["status"] == "fail" for r in standby["results"]) > 20
    assert not [r for r in standby["results"] if r["status"] == "error"]


@pytest.mark.parametrize("args,what", [
    (["check", "--record"], "check --record"),
    (["fix", "--apply"], "fix --apply"),
    (["migrate", "upgrade", "head"], "migrate upgrade"),
], ids=["check-record", "fix-apply", "migrate-upgrade"])
def test_commands_that_write_are_refused_on_a_standby_in_one_line(capsys: pytest.CaptureFixture[str],
                                                                  seeded: Database, replica: Database,
                                                                  args: list[str], what: str) -> None:
    code = main(["--db", cli_url(replica), *args])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, what, "only reads", "primary")
    assert one(seeded, "SELECT to_regclass('integrity.runs') IS NULL") is True  # nothing reached the primary
    assert one(seeded, "SELECT version_num FROM alembic_version") == "0021_add_habit_completions"


@pytest.mark.parametrize("args,what", [
    (["check", "--record"], "check --record"),
    (["fix", "--apply"], "fix --apply"),
    (["migrate", "upgrade", "head"], "migrate upgrade"),
    (["undo", "12345678", "--apply"], "undo"),
], ids=["check-record", "fix-apply", "migrate-upgrade", "undo"])
def test_a_write_cancelled_by_replay_before_its_refusal_is_still_refused_in_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, seeded: Database, replica: Database,
        args: list[str], what: str) -> None:
    """Issue 16, item 4: under load, replay cancels the standby's first query (a recovery conflict, here
    forced on the first statement) before the refusal could run; the user still gets the one-line refusal."""
    fired = replay_cancels(monkeypatch, replica, CANCELLED, times=1)
    code = main(["--db", cli_url(replica), *args])
    out, err = capsys.readouterr()
    assert fired
    assert_one_line_error(code, out, err, what, "only reads", "primary", "nothing was changed")
    assert one(seeded, "SELECT to_regclass('integrity.runs') IS NULL") is True


def _conflicting(tables: set[str], times: int | None) -> Any:
    """Gives a row_pass_sql that makes the pass over `tables` fail like replay does (40001), `times` times."""
    real = engine.row_pass_sql
    left = {"n": times}

    def fake(ctx: Any, table: str, rules: Any) -> str:
        if table in tables and (left["n"] is None or left["n"] > 0):
            if left["n"] is not None:
                left["n"] -= 1
            return ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'serialization_failure', "
                    "MESSAGE = 'canceling statement due to conflict with recovery'; END $$")
        return real(ctx, table, rules)

    return fake


def test_a_pass_cancelled_by_replay_is_retried_in_a_new_snapshot(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  replica: Database) -> None:
    code, clean = _check(capsys, replica, "--select", "REF,NUL")
    monkeypatch.setattr(engine, "row_pass_sql", _conflicting({"habits"}, times=engine.RETRIES))
    retried_code, retried = _check(capsys, replica, "--select", "REF,NUL")
    assert (retried_code, _findings(retried)) == (code, _findings(clean))


def test_a_pass_cancelled_every_time_is_an_error_and_the_others_still_run(capsys: pytest.CaptureFixture[str],
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          replica: Database) -> None:
    _, clean = _check(capsys, replica, "--select", "REF,NUL")
    monkeypatch.setattr(engine, "row_pass_sql", _conflicting({"habits"}, times=None))
    _, report = _check(capsys, replica, "--select", "REF,NUL")
    errors = {(r["code"], r["table"]): r["reason"] for r in report["results"] if r["status"] == "error"}
    assert sorted(errors) == [("REF005", "habits")]
    assert "recovery conflict" in errors["REF005", "habits"] and "max_standby_streaming_delay" in errors[
        "REF005", "habits"]
    others = [f for f in _findings(clean) if f[:2] != ("REF005", "habits")]
    assert [f for f in _findings(report) if f[:2] != ("REF005", "habits")] == others


def _conflicts(db: Database) -> int:
    return int(one(db, "SELECT confl_lock + confl_snapshot + confl_deadlock + confl_bufferpin + confl_tablespace "
                       "FROM pg_stat_database_conflicts WHERE datname = current_database()"))


def test_a_real_recovery_conflict_is_retried_and_the_check_completes(seeded: Database, replica: Database,
                                                                     standby_cluster: Cluster) -> None:
    """The check holds transactions (scanned) and waits for habits (locked by replay); the primary then locks
    transactions: replay must cancel the check's session. The pass is retried in a new snapshot and, once the
    primary lets go, completes with the primary's findings."""
    with psycopg.connect(**seeded.connect_kwargs()) as conn:
        expected = {row[0]: row[1] for row in conn.execute(
            "SELECT 'REF001', count(*) FROM transactions t WHERE t.user_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM users u WHERE u.id = t.user_id) UNION ALL SELECT 'REF005', count(*) FROM habits h "
            "WHERE h.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = h.user_id)").fetchall()}
    before = _conflicts(replica)
    habits_lock = lock(seeded, "habits")
    transactions_lock = psycopg.connect(**seeded.connect_kwargs())
    try:
        flush_wal(seeded)
        wait_until("replay to hold the lock on habits", lambda: one(
            replica, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted "
                     "AND relation = 'public.habits'::regclass"))
        proc = start_cli("--db", cli_url(replica), "check", "--format", "json", "--select", RULES,
                         "--lock-timeout", "120", "--fail-on", "never")
        wait_until("the check to wait for habits", lambda: waiting_on_lock(replica))
        transactions_lock.execute("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        flush_wal(seeded)
        wait_until("replay to cancel the check", lambda: _conflicts(replica) > before)
    finally:
        habits_lock.close()  # the primary lets go (an abort record): replay releases both locks
        transactions_lock.close()
        flush_wal(seeded)
    code, out, err = finish(proc)
    assert code == 0, err
    report = json.loads(out)
    assert {r["code"]: (r["status"], r["count"]) for r in report["results"]} == {
        code: ("fail" if n else "pass", n) for code, n in expected.items()}
    assert expected["REF001"] > 0 and expected["REF005"] > 0
    log = (standby_cluster.datadir / "server.log").read_text(errors="replace")
    assert "terminating connection due to conflict with recovery" in log  # the session was really ended
