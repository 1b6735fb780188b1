# ruff: noqa: F811 - the fixtures imported from test_replica are parameters here
"""`check` on a hot standby when replay cancels what the check reads, or ends its session: the check's own
first reads and its connections are retried in a new snapshot (after pauses), a session lost without a word
is replay's only when the standby counted a conflict, and what cannot be retried is one line.

Replay's effects are made where the tests want them (a statement or a connection made to fail as replay makes
it fail); tests/test_replica.py has the real conflict. Each case here failed before the check retried it
(CI, stop 24: a standby's first reads cancelled, 'lost the connection ... once the server accepts connections
again', on a standby that was up), or was found by the hostile review of that change.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from mita_integrity.check import engine, snapshot
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database.connection import Database
from tests.support.pgcluster import Cluster

from .dbstate import cli_url
from .standby import (
    CANCELLED,
    ENDED_UNHEARD,
    assert_one_line_error,
    one,
    replay_cancels,
    replay_refuses_connections,
    wait_until,
)
from .test_replica import _check, _conflicting, _findings, replica, seeded, standby_cluster  # noqa: F401 - fixtures

_T = TypeVar("_T")

FAST = ["check", "--format", "json", "--fail-on", "never", "--select", "REF,NUL"]


@pytest.fixture
def replay_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standby counts a cancelled session every time it is asked (pg_stat_database_conflicts, as replay
    ending the check's session unheard would make it): a session lost without a word is then replay's."""
    counter = itertools.count()
    monkeypatch.setattr(snapshot, "_conflicts", lambda cur: next(counter))


def _run(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, str, str]:
    code = main(["--db", cli_url(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fault", ["statement-cancelled", "session-ended-unheard", "connection-refused",
                                   "session-pin-ended-unheard"])
def test_the_checks_first_reads_cancelled_by_replay_are_read_again_in_a_new_snapshot(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, replica: Database, fault: str) -> None:
    """Replay may cancel the check's own first reads (the schema, the sizes), or end its session as it starts
    (also during the session's own settings, the first statement of every connection), before any rule ran."""
    code, clean = _check(capsys, replica, "--select", "REF,NUL")
    counted = itertools.count()
    monkeypatch.setattr(snapshot, "_conflicts", lambda cur: next(counted))
    if fault == "connection-refused":
        fired = replay_refuses_connections(monkeypatch, replica, times=engine.RETRIES)
    elif fault == "session-pin-ended-unheard":
        fired = replay_cancels(monkeypatch, replica, ENDED_UNHEARD, times=engine.RETRIES, marker="SET search_path = ")
    else:
        fired = replay_cancels(monkeypatch, replica, CANCELLED if fault == "statement-cancelled" else ENDED_UNHEARD,
                               times=engine.RETRIES)
    retried, out, err = _run(capsys, replica, *FAST)
    assert len(fired) == engine.RETRIES, err
    assert out, err
    assert (retried, _findings(json.loads(out))) == (code, _findings(clean))


def test_the_checks_first_reads_cancelled_every_time_are_one_line(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    replica: Database) -> None:
    fired = replay_cancels(monkeypatch, replica, CANCELLED, times=None)
    code, out, err = _run(capsys, replica, "check")
    assert len(fired) == 1 + engine.RETRIES
    assert_one_line_error(code, out, err, "replay on this standby cancelled the check's reads 3 times in a row",
                          "nothing was changed", "max_standby_streaming_delay", "hot_standby_feedback")


def test_a_session_lost_unheard_on_the_primary_is_not_retried(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              seeded: Database) -> None:
    """Only a standby's replay ends sessions that a new snapshot may outlive: on a primary a session lost without
    a word (a crash, a dropped network) stays the one-line 'lost the connection', at once."""
    fired = replay_cancels(monkeypatch, seeded, ENDED_UNHEARD, times=1)  # a retry would pass: there is none
    code, out, err = _run(capsys, seeded, "check")
    assert len(fired) == 1
    assert_one_line_error(code, out, err, "lost the connection to the database during check", "nothing was changed")


def _unheard_on_habits(monkeypatch: pytest.MonkeyPatch, db: Database, marker: str, times: int) -> list[str]:
    real = engine.row_pass_sql
    monkeypatch.setattr(engine, "row_pass_sql", lambda ctx, table, rules: (
        f"SELECT {marker} " + real(ctx, table, rules).removeprefix("SELECT ") if table == "habits"
        else real(ctx, table, rules)))
    return replay_cancels(monkeypatch, db, ENDED_UNHEARD, times=times, marker=marker)


def test_a_pass_whose_session_replay_ended_unheard_is_retried(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch, replica: Database,
                                                              replay_counts: None) -> None:
    """The session ends in the middle of a pass, the client reads no SQLSTATE, and the standby counted a
    conflict meanwhile: replay's, retried."""
    code, clean = _check(capsys, replica, "--select", "REF,NUL")
    fired = _unheard_on_habits(monkeypatch, replica, "/* ended unheard */", engine.RETRIES)
    retried_code, retried = _check(capsys, replica, "--select", "REF,NUL")
    assert len(fired) == engine.RETRIES
    assert (retried_code, _findings(retried)) == (code, _findings(clean))


def _while_replay_cancels_nothing(db: Database, attempt: Callable[[pytest.MonkeyPatch], _T]) -> _T:
    """Runs `attempt` (with patches of its own) until the standby counted no conflict of its own meanwhile.

    The test standby replays with max_standby_streaming_delay = 0, so a real prune on the primary (autovacuum,
    pg_database's dead rows from other tests' databases) may cancel the check's snapshot for real in the middle
    of the case: the check then rightly retries, and the case asked, a loss the server did not make, was not the
    one run (CI, stop 25). Three tries; the case is void, not passed, if replay moved every time."""
    for _ in range(3):
        before = _conflicts(db)
        with pytest.MonkeyPatch.context() as patches:
            result = attempt(patches)
        if _conflicts(db) == before:
            return result
    pytest.fail("the standby's replay cancelled something during every try: the case could not be run")


def test_a_session_lost_unheard_on_a_standby_that_counted_no_conflict_is_one_line(
        capsys: pytest.CaptureFixture[str], replica: Database) -> None:
    """The same loss, but the standby cancelled nothing (its own count): not replay's, so not retried."""
    def attempt(patches: pytest.MonkeyPatch) -> tuple[list[str], int, str, str]:
        fired = _unheard_on_habits(patches, replica, "/* ended unheard */", 1)
        return fired, *_run(capsys, replica, *FAST)

    fired, code, out, err = _while_replay_cancels_nothing(replica, attempt)
    assert len(fired) == 1
    assert_one_line_error(code, out, err, "lost the connection to the database during check", "nothing was changed")


def test_a_pass_whose_reconnect_replay_refuses_is_still_retried(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 replica: Database) -> None:
    """Review: the new session after a pass's conflict may be refused by replay too, as it starts."""
    code, clean = _check(capsys, replica, "--select", "REF,NUL")
    monkeypatch.setattr(engine, "row_pass_sql", _conflicting({"habits"}, times=1))  # one conflict on habits
    real = psycopg.connect
    port = replica.parsed.params["port"]
    made: list[str] = []

    def connect(conninfo: str = "", *a: Any, **k: Any) -> Any:
        if psycopg.conninfo.conninfo_to_dict(conninfo, **k).get("port") == port:
            made.append(conninfo)
            if len(made) == 2:  # the reconnect after the conflict: replay ends it as it starts, once
                raise psycopg.OperationalError(f'connection failed: connection to server at "127.0.0.1", port {port} '
                                               "failed: FATAL:  canceling statement due to conflict with recovery")
        return real(conninfo, *a, **k)

    monkeypatch.setattr(psycopg, "connect", connect)
    retried, out, err = _run(capsys, replica, *FAST)
    assert len(made) == 3, err  # the first, the refused reconnect, and the one tried again
    assert out, err
    assert (retried, _findings(json.loads(out))) == (code, _findings(clean))


def test_new_sessions_replay_refuses_every_time_are_one_line(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             replica: Database) -> None:
    monkeypatch.setattr(engine, "row_pass_sql", _conflicting({"habits"}, times=1))
    fired = replay_refuses_connections(monkeypatch, replica, times=1000, after=1)
    code, out, err = _run(capsys, replica, *FAST)
    assert len(fired) == 1 + engine.RETRIES  # two retries of the pass, then the new snapshot for the passes after it
    assert_one_line_error(code, out, err, "replay on this standby cancelled the check's reads (connection failed",
                          "conflict with recovery", "nothing was changed")


def test_an_incremental_checks_own_read_cancelled_is_told_as_once(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  replica: Database) -> None:
    """Review: check --incremental's own reads (the snapshot's position, the base) are not retried; a
    cancellation there is one line that does not claim retries that never happened."""
    fired = replay_cancels(monkeypatch, replica, CANCELLED, times=1, marker="pg_current_snapshot()::text")
    code, out, err = _run(capsys, replica, "check", "--incremental", "--select", "REF,NUL")
    assert len(fired) == 1
    assert_one_line_error(code, out, err, "replay on this standby cancelled the check's reads (canceling statement")


class _DroppingProxy:
    """Forwards a port of its own to the standby; closes both sides of a connection whose client sends `marker`
    (a load balancer's timeout, a firewall)."""

    def __init__(self, target_port: int, marker: bytes) -> None:
        self.target_port, self.marker = target_port, marker
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(50)
        self.port = self.listener.getsockname()[1]
        self.dropped = 0
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and self.marker in data:
                    self.dropped += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


@pytest.fixture
def dropping_proxy(replica: Database) -> Iterator[_DroppingProxy]:
    proxy = _DroppingProxy(int(replica.parsed.params["port"]), b"/* dropped by the network */")
    yield proxy
    proxy.close()


def _conflicts(db: Database) -> int:
    with psycopg.connect(**db.connect_kwargs()) as conn:
        return int(one(db, snapshot.conflicts_sql(conn.info.server_version)))


def test_the_standbys_count_sums_every_cause_the_server_counts(replica: Database) -> None:
    """PostgreSQL 16 counts sessions ended for an invalidated logical slot apart (confl_active_logicalslot): a
    loss from that cause must count as replay's too. Every confl_ column of the view is in the sum."""
    with psycopg.connect(**replica.connect_kwargs()) as conn:
        version = conn.info.server_version
        columns = {r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_stat_database_conflicts'::regclass "
            "AND attname LIKE 'confl%'").fetchall()}
        counted = snapshot._conflicts(conn.cursor())
    assert counted is not None and counted >= 0
    assert columns == set(snapshot.conflicts_sql(version).split("SELECT ", 1)[1].split(" FROM")[0].split(" + "))


def test_a_network_drop_in_front_of_a_standby_is_a_lost_connection(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   replica: Database,
                                                                   dropping_proxy: _DroppingProxy) -> None:
    """Review: real sockets closed by a proxy in front of the standby, which cancels nothing: one line, at once,
    not a recovery conflict retried three times with advice on replay's settings."""
    real = engine.row_pass_sql
    monkeypatch.setattr(engine, "row_pass_sql", lambda ctx, table, rules: (
        "SELECT /* dropped by the network */ " + real(ctx, table, rules).removeprefix("SELECT ") if table == "habits"
        else real(ctx, table, rules)))
    params = {**replica.parsed.params, "port": str(dropping_proxy.port)}
    via_proxy = Database(type(replica.parsed)(params=params, dropped=replica.parsed.dropped), "test")

    def attempt(patches: pytest.MonkeyPatch) -> tuple[int, int, str, str]:
        dropped = dropping_proxy.dropped
        code, out, err = _run(capsys, via_proxy, *FAST)
        return dropping_proxy.dropped - dropped, code, out, err

    dropped, code, out, err = _while_replay_cancels_nothing(replica, attempt)
    assert dropped == 1
    assert_one_line_error(code, out, err, "lost the connection to the database during check", "nothing was changed")


@pytest.mark.parametrize("args", [["runs"], ["fix"], ["verify"], ["undo", "12345678"], ["migrate", "current"],
                                  ["changelog", "status"], ["schedule", "--once"]], ids=lambda a: "-".join(a))
def test_other_commands_refused_by_replay_at_connect_say_one_line(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  replica: Database, args: list[str]) -> None:
    """Review: connect() lets the refusal through as psycopg's error (for the check to retry): every other
    command still ends in one line."""
    fired = replay_refuses_connections(monkeypatch, replica, times=1000)
    code, out, err = _run(capsys, replica, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert fired and code == 3, (code, out, err)
    assert lines[-1].startswith("error: ") and "unexpected" not in err and "Traceback" not in err, err


def test_a_snapshot_the_second_connection_could_not_share_is_counted(monkeypatch: pytest.MonkeyPatch,
                                                                     seeded: Database) -> None:
    """Review: a server that refuses pg_export_snapshot makes the check start again in a new snapshot, after the
    schema was read: two snapshots, and no base kept (an incremental check needs one snapshot to start from)."""
    real = psycopg.Cursor.execute

    def execute(cur: psycopg.Cursor[Any], query: Any, *a: Any, **k: Any) -> Any:
        if "pg_export_snapshot" in str(query):
            raise psycopg.errors.InsufficientPrivilege("permission denied for function pg_export_snapshot")
        return real(cur, query, *a, **k)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    report = run_check(seeded, CheckRequest(select=("REF001",), keep_base=True))
    assert "cannot export the snapshot" in report.options["connections"]
    assert report.options.get("snapshots") == 2, report.options
    assert report.kept is None


def test_the_daemon_starts_when_replay_refuses_its_first_session(monkeypatch: pytest.MonkeyPatch,
                                                                 replica: Database) -> None:
    """Review: the daemon's first connection, refused by replay as it starts, is a warning, as an unreachable
    server is (only a configuration the server refuses stops it)."""
    from mita_integrity.schedule.runner import preflight

    replay_refuses_connections(monkeypatch, replica, times=1)
    warning = preflight(replica)
    assert warning is not None and warning.startswith("warning: replay on this standby ended the first session")


TEAM_RULE = """
[[custom_rules]]
code = "X001"
name = "large-spend"
section = 9
severity = "high"
table = "transactions"
where = "t.amount > 50000"
"""


def test_a_team_rules_validation_cancelled_by_replay_is_read_again(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    replica: Database, tmp_path: Path) -> None:
    """Review: the EXPLAIN that validates a team rule is one of the check's first reads; replay cancelling it is
    no fault of the rule (it was told 'X001 is not valid SQL')."""
    config = tmp_path / "mita-integrity.toml"
    config.write_text(TEAM_RULE)
    args = ["--config", str(config), "check", "--format", "json", "--fail-on", "never", "--select", "X001,REF001"]
    code, out, err = _run(capsys, replica, *args)
    assert out, err
    clean = json.loads(out)
    fired = replay_cancels(monkeypatch, replica, CANCELLED, times=1, marker="EXPLAIN ")
    retried, out, err = _run(capsys, replica, *args)
    assert len(fired) == 1
    assert out, err
    assert (retried, _findings(json.loads(out))) == (code, _findings(clean))


def test_a_network_drop_in_reads_that_are_not_retried_is_a_lost_connection(capsys: pytest.CaptureFixture[str],
                                                                           replica: Database) -> None:
    """Review: check --incremental's own reads are not retried; a loss there that no new snapshot confirmed as
    replay's is told as what it looks like, with no advice on the standby's replay settings."""
    proxy = _DroppingProxy(int(replica.parsed.params["port"]), b"pg_current_snapshot()::text")
    try:
        params = {**replica.parsed.params, "port": str(proxy.port)}
        via_proxy = Database(type(replica.parsed)(params=params, dropped=replica.parsed.dropped), "test")

        def attempt(patches: pytest.MonkeyPatch) -> tuple[int, int, str, str]:
            dropped = proxy.dropped
            code, out, err = _run(capsys, via_proxy, *FAST, "--incremental")
            return proxy.dropped - dropped, code, out, err

        dropped, code, out, err = _while_replay_cancels_nothing(replica, attempt)
        assert dropped == 1, err
    finally:
        proxy.close()
    assert_one_line_error(code, out, err, "lost the connection to the database during check")
    assert "max_standby_streaming_delay" not in err, err


# Last in the module: it restarts the module's standby.
@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_a_standby_restarted_during_a_pass_is_a_lost_connection(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch, replica: Database,
                                                                standby_cluster: Cluster, mode: str) -> None:
    """Review: a real restart of the standby while a pass runs is one line, 'lost the connection' (an immediate
    one ends the session without a word: the new session then finds the standby still starting, and that is
    told as the loss it was, not as a URL to check)."""
    real = engine.row_pass_sql
    monkeypatch.setattr(engine, "row_pass_sql", lambda ctx, table, rules: (
        real(ctx, table, rules).replace("SELECT ", "SELECT (pg_sleep(3) IS NULL)::int * 0 + ", 1)
        if table == "habits" else real(ctx, table, rules)))

    def restart() -> None:  # once the pass on habits runs (CI: a fixed second was sometimes before the check began)
        wait_until("the pass on habits to run", lambda: one(
            replica, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' "
                     "AND pid <> pg_backend_pid()"))
        standby_cluster.stop(mode)
        standby_cluster.start()

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        code, out, err = _run(capsys, replica, *FAST)
    finally:
        thread.join()
    assert_one_line_error(code, out, err, "lost the connection to the database during check")
