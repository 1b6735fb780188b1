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
    assert_one_line_error,
    finish,
    flush_wal,
    lock,
    one,
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
    fired = _replay_cancels(monkeypatch, replica, CANCELLED, times=1)
    code = main(["--db", cli_url(replica), *args])
    out, err = capsys.readouterr()
    assert fired
    assert_one_line_error(code, out, err, what, "only reads", "primary", "nothing was changed")
    assert one(seeded, "SELECT to_regclass('integrity.runs') IS NULL") is True


# What replay does to a standby's session, as the client sees it: a statement cancelled (SQLSTATE 40001), a session
# ended while the client was not reading (the socket closed before the FATAL was read: no SQLSTATE at all).
CANCELLED = psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")
ENDED_UNHEARD = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")


def _replay_cancels(monkeypatch: pytest.MonkeyPatch, db: Database, error: psycopg.Error, times: int | None,
                    marker: str | None = None) -> list[str]:
    """Makes statements to db's server fail with `error`, `times` times (None: always): the first ones after the
    session's own settings, or only those containing `marker`. Gives the statements that failed."""
    real = psycopg.Cursor.execute
    port = int(db.parsed.params["port"])
    fired: list[str] = []

    def execute(cur: psycopg.Cursor[Any], *a: Any, **k: Any) -> Any:
        query = a[0] if a else k.get("query", "")
        statement = query.decode() if isinstance(query, bytes) else str(query)  # the session pin is sent as bytes
        hit = marker in statement if marker else not statement.lstrip().upper().startswith("SET")
        if hit and cur.connection.info.port == port and (times is None or len(fired) < times):
            fired.append(statement)
            raise error
        return real(cur, *a, **k)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return fired


def _replay_refuses_connections(monkeypatch: pytest.MonkeyPatch, db: Database, times: int) -> list[str]:
    """Makes the first `times` connections to db's server fail as replay makes a starting session fail: a FATAL
    libpq keeps only the text of. Gives what was refused."""
    real = psycopg.connect
    port = db.parsed.params["port"]
    fired: list[str] = []

    def connect(conninfo: str = "", *a: Any, **k: Any) -> Any:
        if psycopg.conninfo.conninfo_to_dict(conninfo, **k).get("port") == port and len(fired) < times:
            fired.append(conninfo)
            raise psycopg.OperationalError(f'connection failed: connection to server at "127.0.0.1", port {port} '
                                           "failed: FATAL:  canceling statement due to conflict with recovery")
        return real(conninfo, *a, **k)

    monkeypatch.setattr(psycopg, "connect", connect)
    return fired


@pytest.mark.parametrize("fault", ["statement-cancelled", "session-ended-unheard", "connection-refused"])
def test_the_checks_first_reads_cancelled_by_replay_are_read_again_in_a_new_snapshot(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, replica: Database, fault: str) -> None:
    """Replay may cancel the check's own first reads (the schema, the sizes), or end its session as it starts,
    before any rule ran (CI, stop 24: 'lost the connection ... re-run the command once the server accepts
    connections again', on a standby that was up). They are read again in a new snapshot, after a pause."""
    code, clean = _check(capsys, replica, "--select", "REF,NUL")
    if fault == "connection-refused":
        fired = _replay_refuses_connections(monkeypatch, replica, times=engine.RETRIES)
    else:
        fired = _replay_cancels(monkeypatch, replica, CANCELLED if fault == "statement-cancelled" else ENDED_UNHEARD,
                                times=engine.RETRIES)
    retried = main(["--db", cli_url(replica), "check", "--format", "json", "--fail-on", "never",
                    "--select", "REF,NUL"])
    out, err = capsys.readouterr()
    assert len(fired) == engine.RETRIES
    assert out, err
    assert (retried, _findings(json.loads(out))) == (code, _findings(clean))


def test_the_checks_first_reads_cancelled_every_time_are_one_line(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    replica: Database) -> None:
    fired = _replay_cancels(monkeypatch, replica, CANCELLED, times=None)
    code = main(["--db", cli_url(replica), "check"])
    out, err = capsys.readouterr()
    assert len(fired) == 1 + engine.RETRIES
    assert_one_line_error(code, out, err, "replay on this standby cancelled the check's reads 3 times",
                          "nothing was changed", "max_standby_streaming_delay", "hot_standby_feedback")


def test_a_session_lost_unheard_on_the_primary_is_not_retried(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              seeded: Database) -> None:
    """Only a standby's replay ends sessions that a new snapshot may outlive: on a primary a session lost without
    a word (a crash, a dropped network) stays the one-line 'lost the connection', at once."""
    fired = _replay_cancels(monkeypatch, seeded, ENDED_UNHEARD, times=1)  # a retry would pass: there is none
    code = main(["--db", cli_url(seeded), "check"])
    out, err = capsys.readouterr()
    assert len(fired) == 1
    assert_one_line_error(code, out, err, "lost the connection to the database during check", "nothing was changed")


def test_a_pass_whose_session_replay_ended_unheard_is_retried(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              replica: Database) -> None:
    """The session ends in the middle of a pass, and the client reads no SQLSTATE: on a standby, a conflict."""
    code, clean = _check(capsys, replica, "--select", "REF,NUL")
    real = engine.row_pass_sql
    monkeypatch.setattr(engine, "row_pass_sql", lambda ctx, table, rules: (
        "SELECT /* ended unheard */ " + real(ctx, table, rules).removeprefix("SELECT ") if table == "habits"
        else real(ctx, table, rules)))
    fired = _replay_cancels(monkeypatch, replica, ENDED_UNHEARD, times=engine.RETRIES, marker="/* ended unheard */")
    retried_code, retried = _check(capsys, replica, "--select", "REF,NUL")
    assert len(fired) == engine.RETRIES
    assert (retried_code, _findings(retried)) == (code, _findings(clean))


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
