"""The nightly job on a bad night, against a real PostgreSQL and loopback receivers only: the daemon outlives
a database outage, alerts reach every channel at least once (the outbox), a slow receiver is bounded, and
every channel's outcome is visible in `runs`, `runs --show`, the daemon's line and the metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import sql

from mita_integrity.alerts import load_config
from mita_integrity.check.run import CheckRequest
from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.errors import ConnectionFailed
from mita_integrity.database.urls import build_url
from mita_integrity.schedule.runner import MetricsExporter, ScheduleRequest, Stopper, serve

from .conftest import PgServer
from .receivers import HttpReceiver, SmtpReceiver, free_port
from .report_samples import prometheus_value

GHOST = "00000000-0000-0000-0000-0000000000ff"
ORPHAN_PLAN = (f"INSERT INTO daily_plan (id, user_id, date, category) VALUES ('00000000-0000-0000-0000-0000000000b1', "
               f"'{GHOST}', date_trunc('day', now(), 'UTC'), 'food')")  # REF003: critical, to every channel
CHANNELS = ("slack", "email", "sentry", "webhook")


def scrape(port: int) -> str:
    """Gives what Prometheus would read from the exporter: an HTTP GET of its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(answer.read().decode())


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        env = {"MITA_SLACK_WEBHOOK_URL": http.url("/slack"), "MITA_ALERT_WEBHOOK_URL": http.url("/hook"),
               "SENTRY_DSN": http.dsn(), "MITA_SMTP_URL": smtp.url(), "MITA_ALERT_EMAIL_TO": "oncall@example.com",
               "MITA_ALERT_EMAIL_FROM": "mita-integrity@example.com"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield http, smtp


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def _sql(db: Database, statement: str) -> None:
    with connect(db) as conn:
        conn.execute(statement.encode())
        conn.commit()


def accepted(http: HttpReceiver, smtp: SmtpReceiver) -> dict[str, int]:
    """What each channel accepted (answered 200 / took the mail)."""
    return {"slack": len(http.accepted("/slack")), "email": len(smtp.mails),
            "sentry": len(http.accepted("/api/1/envelope/")), "webhook": len(http.accepted("/hook"))}


def once(db: Database, *extra: str) -> list[str]:
    return ["--db", _url(db), "schedule", "--once", "--select", "REF003", "--fail-on", "never", *extra]


# ---------------------------------------------------------------- 1. the daemon survives an outage

class OutageClock:
    """A controlled clock for serve(): each wait moves it; crossing `down` closes the database to connections
    (ALTER DATABASE … ALLOW_CONNECTIONS false), crossing `up` opens it again."""

    def __init__(self, start: datetime, pg: PgServer, dbname: str, down: datetime, up: datetime) -> None:
        self.moment, self.pg, self.dbname, self.down, self.up = start, pg, dbname, down, up
        self.waits = 0

    def now(self) -> datetime:
        return self.moment

    def _allow(self, allow: bool) -> None:
        self.pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(self.dbname), sql.SQL("true" if allow else "false")))
        if not allow:
            self.pg.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}")
                            .format(sql.Literal(self.dbname)))

    def wait(self, seconds: float, stop: threading.Event) -> None:
        self.waits += 1
        assert self.waits < 1000
        before, self.moment = self.moment, self.moment + timedelta(seconds=seconds)
        for when, allow in ((self.down, False), (self.up, True)):
            if before < when <= self.moment:
                self._allow(allow)


def test_the_daemon_survives_a_database_outage_and_runs_the_next_slot(
        pg: PgServer, baseline_db: Database, receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    """The issue's night: `* * * * *`, connections refused from :50 for 25 s. The 12:01 run fails — logged,
    counted in the metrics, alerted — and the 12:02 run completes and delivers the finding."""
    http, smtp = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    start = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    clock = OutageClock(start, pg, baseline_db.dbname, down=start + timedelta(seconds=20),
                        up=start + timedelta(seconds=45))
    request = ScheduleRequest(cron="* * * * *", check=CheckRequest(select=("REF003",)),
                              alerts=load_config(os.environ))
    port = free_port()
    metrics = MetricsExporter(port=port)
    lines: list[str] = []
    try:
        done = serve(baseline_db, request, lines.append, Stopper(), metrics, runs=2, clock=clock)
        scraped = scrape(port)
    finally:
        clock._allow(True)
        metrics.close()
    assert done == 2
    failed = next(line for line in lines if "FAILED" in line)
    assert failed.startswith("the check of 2026-06-01T12:01:00+00:00 FAILED: cannot connect to")
    assert "not currently accepting connections" in failed and "alerts: slack ok" in failed
    assert any(line.startswith("check run ") and "1 new" in line for line in lines), lines
    assert lines[-1] == "scheduler stopped"
    assert prometheus_value(scraped, "mita_integrity_scheduled_runs_total", outcome="failed") == 1
    assert prometheus_value(scraped, "mita_integrity_scheduled_runs_total", outcome="completed") == 1
    assert prometheus_value(scraped, "mita_integrity_violations", code="REF003", severity="critical",
                            table="daily_plan") == 1
    slack = [p.body.decode() for p in http.accepted("/slack")]
    assert len(slack) == 2 and "could not run" in slack[0] and "not currently accepting connections" in slack[0]
    assert "REF003" in slack[1]
    assert [e["fingerprint"] for e in http.sentry_events()] == [["mita-integrity", "check-could-not-run"],
                                                                ["mita-integrity", "REF003", "daily_plan"]]
    assert json.loads(http.accepted("/hook")[0].body)["failure"].startswith("cannot connect to")
    assert smtp.mails[0].message["Subject"].startswith("[mita-integrity] the check of")


def test_a_long_outage_is_alerted_once_and_every_failed_run_counted(
        pg: PgServer, baseline_db: Database, receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    """`* * * * *` through five minutes of refused connections: five failed runs logged and counted, one
    alert (not one a minute), then the run after the outage completes."""
    http, _ = receivers
    start = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    clock = OutageClock(start, pg, baseline_db.dbname, down=start + timedelta(seconds=20),
                        up=start + timedelta(minutes=5, seconds=15))
    request = ScheduleRequest(cron="* * * * *", check=CheckRequest(select=("REF003",)),
                              alerts=load_config(os.environ))
    metrics = MetricsExporter()
    lines: list[str] = []
    try:
        assert serve(baseline_db, request, lines.append, Stopper(), metrics, runs=6, clock=clock) == 6
    finally:
        clock._allow(True)
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 5 and failed[0].endswith("alerts: slack ok, email ok, sentry ok, webhook ok")
    assert all(line.endswith("alerts: not sent again (the same failure as the run before)") for line in failed[1:])
    assert prometheus_value(metrics.text, "mita_integrity_scheduled_runs_total", outcome="failed") == 5
    assert sum(1 for line in lines if line.startswith("check run ")) == 1
    assert len(http.accepted("/slack")) == 1


def test_once_on_an_outage_alerts_then_fails_in_one_line(capsys: pytest.CaptureFixture[str], pg: PgServer,
                                                          baseline_db: Database,
                                                          receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, _ = receivers
    pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(baseline_db.dbname)))
    try:
        assert main(once(baseline_db)) == 3
    finally:
        pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(baseline_db.dbname)))
    err = capsys.readouterr().err
    assert "the failure was alerted: slack ok" in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if "not currently accepting connections" in line)]
    assert len(http.accepted("/slack")) == 1


def test_only_a_refused_configuration_stops_the_daemon_at_start(baseline_db: Database) -> None:
    from mita_integrity.schedule.runner import preflight

    assert preflight(baseline_db) is None
    wrong = Database.from_url(_url(baseline_db).replace(f"/{baseline_db.dbname}", "/no_such_database_here"))
    with pytest.raises(ConnectionFailed, match="does not exist"):
        preflight(wrong)
    from .receivers import free_port

    down = Database.from_url(f"postgresql://mita@127.0.0.1:{free_port()}/mita")
    warning = preflight(down)
    assert warning is not None and "starting anyway" in warning and "connection refused" in warning


def test_a_bug_in_a_run_is_a_failed_run_not_a_dead_daemon(baseline_db: Database,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from mita_integrity.schedule import runner as schedule
    from mita_integrity.schedule.runner import attempt, describe

    def broken(*args: object, **kwargs: object) -> object:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(schedule, "run_check", broken)
    run = attempt(baseline_db, ScheduleRequest(), datetime(2026, 6, 1, 2, tzinfo=UTC))
    assert run.failure == "ZeroDivisionError: division by zero"
    assert describe(run) == ("the check of 2026-06-01T02:00:00+00:00 FAILED: ZeroDivisionError: division by zero; "
                             "alerts: no alert due")


# ---------------------------------------------------------------- 2. DST with the real run

def test_the_night_clocks_go_back_runs_the_next_day_once_against_the_database(baseline_db: Database) -> None:
    """At 02:00:05 CEST on 2026-10-25, with that slot recorded: the daemon's next run is 02:00 CET on the
    26th — run, not skipped as "already recorded" — after a bounded number of waits."""
    from mita_integrity.schedule.runner import attempt

    berlin = "Europe/Berlin"
    first = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST
    request = ScheduleRequest(cron="0 2 * * *", timezone=berlin, check=CheckRequest(select=("REF003",)))
    assert attempt(baseline_db, request, first).report is not None

    class Controlled:
        moment = first + timedelta(seconds=5)
        waits = 0

        def now(self) -> datetime:
            return self.moment

        def wait(self, seconds: float, stop: threading.Event) -> None:
            assert seconds > 0
            Controlled.waits += 1
            self.moment += timedelta(seconds=seconds)

    clock = Controlled()
    lines: list[str] = []
    assert serve(baseline_db, request, lines.append, Stopper(), runs=1, clock=clock) == 1
    assert lines[0] == "next check at 2026-10-26T02:00:00+01:00 (Europe/Berlin)"
    assert lines[1].startswith("check run ") and Controlled.waits <= 25 * 60 + 1
    with connect(baseline_db) as conn:
        slots = conn.execute("SELECT options->>'scheduled_slot' FROM integrity.runs ORDER BY 1").fetchall()
    assert slots == [("2026-10-25T00:00:00+00:00",), ("2026-10-26T01:00:00+00:00",)]


# ---------------------------------------------------------------- 3. at least once per channel

def test_a_channel_that_failed_gets_the_alert_once_on_the_next_run_and_the_others_nothing_twice(
        capsys: pytest.CaptureFixture[str], baseline_db: Database,
        receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, smtp = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    http.fail("/slack", 500, times=4)  # every attempt of the first run
    assert main(once(baseline_db)) == 0
    captured = capsys.readouterr()
    assert "slack FAILED (HTTP 500" in captured.out and "gave up after 4 attempts" in captured.out
    assert "alert channel slack failed" in captured.err
    assert accepted(http, smtp) == {"slack": 0, "email": 1, "sentry": 1, "webhook": 1}

    assert main(once(baseline_db)) == 0  # slack is back: it hears of REF003 now, the others hear nothing
    out = capsys.readouterr().out
    assert "0 new, 0 worsened, 0 resolved; alerts: slack ok" in out and "email" not in out
    assert accepted(http, smtp) == {"slack": 1, "email": 1, "sentry": 1, "webhook": 1}
    assert "REF003" in http.accepted("/slack")[0].body.decode()

    assert main(once(baseline_db)) == 0  # and nobody hears it again
    assert "alerts: no alert due" in capsys.readouterr().out
    assert accepted(http, smtp) == {"slack": 1, "email": 1, "sentry": 1, "webhook": 1}

    _sql(baseline_db, f"DELETE FROM daily_plan WHERE user_id = '{GHOST}'")
    assert main(once(baseline_db)) == 0  # "resolved" still follows a fix, once, where it is routed
    assert "1 resolved; alerts: slack ok, email ok, webhook ok" in capsys.readouterr().out
    assert accepted(http, smtp) == {"slack": 2, "email": 2, "sentry": 1, "webhook": 2}


def test_check_record_without_alert_does_not_swallow_the_next_runs_alert(
        capsys: pytest.CaptureFixture[str], baseline_db: Database,
        receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, smtp = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    assert main(["--db", _url(baseline_db), "check", "--record", "--select", "REF003"]) == 2
    assert "1 new" in capsys.readouterr().err and accepted(http, smtp) == dict.fromkeys(CHANNELS, 0)
    assert main(once(baseline_db)) == 0
    out = capsys.readouterr().out
    assert "0 new, 0 worsened, 0 resolved; alerts: slack ok, email ok, sentry ok, webhook ok" in out
    assert accepted(http, smtp) == dict.fromkeys(CHANNELS, 1)


def _killed_while_the_webhook_hangs(db: Database, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    """Runs `schedule --once` with the webhook hanging and SIGKILLs it while it waits for the webhook."""
    _sql(db, ORPHAN_PLAN)
    http.hold("/hook")
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    proc = subprocess.Popen([exe, *once(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while not (http.at("/hook") and accepted(http, smtp)["slack"] and accepted(http, smtp)["email"]
                   and accepted(http, smtp)["sentry"]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        time.sleep(0.5)  # the told channels' rows are written as each finishes
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    http.release("/hook")
    assert accepted(http, smtp) == {"slack": 1, "email": 1, "sentry": 1, "webhook": 0}
    with connect(db) as conn:
        told = conn.execute("SELECT channel FROM integrity.alert_outbox ORDER BY 1").fetchall()
    assert told == [("email",), ("sentry",), ("slack",)]


def test_sigkill_during_delivery_then_a_restart_delivers_the_pending_alert_once(
        baseline_db: Database, receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    """The webhook hangs; the scheduler is killed with SIGKILL while it waits for it. The run is recorded,
    the other channels were told (and remember it); the restart tells the webhook, once, and nobody else."""
    http, smtp = receivers
    _killed_while_the_webhook_hangs(baseline_db, http, smtp)
    assert main(once(baseline_db)) == 0  # the restart
    assert accepted(http, smtp) == dict.fromkeys(CHANNELS, 1)
    assert json.loads(http.accepted("/hook")[0].body)["delta"]["new"][0]["code"] == "REF003"
    assert main(once(baseline_db)) == 0
    assert accepted(http, smtp) == dict.fromkeys(CHANNELS, 1)


def test_a_restarted_daemon_delivers_what_its_killed_predecessor_did_not_at_once(
        baseline_db: Database, receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    """The same kill, restarted as the daemon (systemd's Restart=always): it tells the webhook when it starts,
    not at the next fire time a day later."""
    http, smtp = receivers
    _killed_while_the_webhook_hangs(baseline_db, http, smtp)
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    daemon = subprocess.Popen([exe, "--db", _url(baseline_db), "schedule", "--cron", "0 2 * * *"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert daemon.stdout is not None
        first = daemon.stdout.readline()
        assert first.startswith("pending alerts of check run ") and first.strip().endswith(": webhook ok"), first
        assert daemon.stdout.readline().startswith("next check at ")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    assert accepted(http, smtp) == dict.fromkeys(CHANNELS, 1)


# ---------------------------------------------------------------- 4. a slow receiver is bounded

def test_a_trickling_receiver_is_cut_at_the_deadline_and_the_lock_released(
        capsys: pytest.CaptureFixture[str], baseline_db: Database, receivers: tuple[HttpReceiver, SmtpReceiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    http, smtp = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    http.trickle("/slack", 0.5)  # ~80 bytes of answer: 40 s if nothing cut it
    monkeypatch.setenv("MITA_ALERT_ATTEMPT_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("MITA_ALERT_DELIVERY_BUDGET_SECONDS", "3")
    began = time.monotonic()
    assert main(once(baseline_db)) == 0
    took = time.monotonic() - began
    out = capsys.readouterr().out
    assert "slack FAILED" in out and "deadline of 1 s" in out, out
    assert "email ok, sentry ok, webhook ok" in out  # the others are not held up by it
    assert took < 15, took
    from mita_integrity.schedule.runner import LOCK_KEY

    with connect(baseline_db) as conn:
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone() == (True,)


# ---------------------------------------------------------------- 5. each channel's outcome, everywhere

def test_each_channels_outcome_and_reason_in_runs_show_and_metrics(
        capsys: pytest.CaptureFixture[str], baseline_db: Database, receivers: tuple[HttpReceiver, SmtpReceiver],
        tmp_path: Path) -> None:
    http, _ = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    http.fail("/slack", 500, times=4)
    metrics = tmp_path / "mita.prom"
    assert main([*once(baseline_db), "--metrics-file", str(metrics)]) == 0
    capsys.readouterr()
    text = metrics.read_text()
    assert prometheus_value(text, "mita_integrity_alert_deliveries_total", channel="slack", outcome="failed") == 1
    assert prometheus_value(text, "mita_integrity_alert_deliveries_total", channel="email", outcome="ok") == 1
    assert prometheus_value(text, "mita_integrity_alert_last_delivery_ok", channel="slack", reason="http_500") == 0
    assert prometheus_value(text, "mita_integrity_alert_last_delivery_ok", channel="webhook", reason="") == 1
    from prometheus_client.parser import text_string_to_metric_families

    assert {f.name for f in text_string_to_metric_families(text)} >= {
        "mita_integrity_alert_deliveries", "mita_integrity_alert_last_delivery_ok", "mita_integrity_scheduled_runs"}

    assert main(["--db", _url(baseline_db), "runs", "--kind", "check", "--format", "json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert [(d["channel"], d["ok"]) for d in run["summary"]["deliveries"]] == [
        ("slack", False), ("email", True), ("sentry", True), ("webhook", True)]
    assert main(["--db", _url(baseline_db), "runs", "--kind", "check"]) == 0
    listed = capsys.readouterr().out.splitlines()  # 80 columns here: the summary is cut, the failure is not lost
    assert len(listed) == 3 and listed[2].startswith(" " * 10 + "alert slack FAILED: HTTP 500 Internal Server")
    assert main(["--db", _url(baseline_db), "runs", "--show", run["id"]]) == 0
    shown = capsys.readouterr().out
    assert "  alerts   slack    FAILED: HTTP 500 Internal Server Error from http://127.0.0.1:" in shown
    assert "           email    ok, 1 sent" in shown
    assert main(["--db", _url(baseline_db), "runs", "--show", run["id"], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["deliveries"][0]["error"].startswith("HTTP 500")
