"""`schedule` end to end against loopback receivers: deliveries to all four channels, silence when nothing
changed, "resolved" after a fix, one run for two concurrent schedulers, metrics, graceful stop, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

from .polling import until
from .receivers import HttpReceiver, SmtpReceiver
from .report_samples import prometheus_value

GHOST = "00000000-0000-0000-0000-0000000000ff"
ORPHAN_PLAN = (f"INSERT INTO daily_plan (id, user_id, date, category) VALUES ('00000000-0000-0000-0000-0000000000b1', "
               f"'{GHOST}', date_trunc('day', now(), 'UTC'), 'food')")  # REF003: critical


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        monkeypatch.setenv("MITA_SLACK_WEBHOOK_URL", http.url("/slack"))
        monkeypatch.setenv("MITA_ALERT_WEBHOOK_URL", http.url("/hook"))
        monkeypatch.setenv("SENTRY_DSN", http.dsn())
        monkeypatch.setenv("MITA_SMTP_URL", smtp.url())
        monkeypatch.setenv("MITA_ALERT_EMAIL_TO", "oncall@example.com, lead@example.com")
        monkeypatch.setenv("MITA_ALERT_EMAIL_FROM", "mita-integrity@example.com")
        yield http, smtp


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def _sql(db: Database, statement: str) -> None:
    with connect(db) as conn:
        conn.execute(statement.encode())
        conn.commit()


def _counts(http: HttpReceiver, smtp: SmtpReceiver) -> dict[str, int]:
    return {"slack": len(http.at("/slack")), "webhook": len(http.at("/hook")), "sentry": len(http.sentry_events()),
            "email": len(smtp.mails)}


def test_once_delivers_then_stays_silent_then_resolves(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                      receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, smtp = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    once = ["--db", _url(baseline_db), "schedule", "--once", "--ignore", "SCH", "--fail-on", "never"]
    assert main(once) == 0
    out = capsys.readouterr().out
    assert "1 new" in out and "slack ok" in out and "email ok" in out and "sentry ok" in out and "webhook ok" in out
    first = _counts(http, smtp)
    assert first == {"slack": 1, "webhook": 1, "sentry": 1, "email": 1}
    assert "REF003" in http.at("/slack")[0].body.decode()
    assert "REF003" in smtp.mails[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert http.sentry_events()[0]["fingerprint"][1:] == ["REF003", "daily_plan"]
    assert json.loads(http.at("/hook")[0].body)["delta"]["new"][0]["code"] == "REF003"

    assert main(once) == 0  # nothing changed: nothing is sent
    assert "no alert due" in capsys.readouterr().out
    assert _counts(http, smtp) == first

    _sql(baseline_db, ORPHAN_PLAN.replace("b1'", "b2'"))  # the count grew: alert again
    assert main(once) == 0
    assert "1 worsened" in capsys.readouterr().out
    assert _counts(http, smtp)["slack"] == 2

    assert main(["--db", _url(baseline_db), "fix", "--apply", "--select", "REF003"]) == 0
    capsys.readouterr()
    assert main(once) == 0
    out = capsys.readouterr().out
    assert "0 new, 0 worsened" in out and "resolved" in out and "slack ok" in out
    assert "resolved" in http.at("/slack")[-1].body.decode().lower()
    assert main(["--db", _url(baseline_db), "runs", "--kind", "check", "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 4 and all("deliveries" in r["summary"] for r in runs)


def test_a_dead_receiver_does_not_stop_the_others(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                  receivers: tuple[HttpReceiver, SmtpReceiver],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    http, smtp = receivers
    monkeypatch.setenv("MITA_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/slack")  # nothing listens there
    _sql(baseline_db, ORPHAN_PLAN)
    assert main(["--db", _url(baseline_db), "schedule", "--once", "--ignore", "SCH"]) == 2  # the check's own code
    captured = capsys.readouterr()
    assert "alert channel slack failed" in captured.err
    assert {k: v for k, v in _counts(http, smtp).items() if k != "slack"} == {"webhook": 1, "sentry": 1, "email": 1}


def test_two_concurrent_schedulers_make_one_run(baseline_db: Database, tmp_path: Path) -> None:
    _sql(baseline_db, ORPHAN_PLAN)
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MITA_", "SENTRY_"))}
    args = [exe, "--db", _url(baseline_db), "schedule", "--once", "--fail-on", "never"]
    from mita_integrity.schedule.runner import LOCK_KEY

    with connect(baseline_db, autocommit=True) as holder:  # both start while the lock is busy: truly concurrent
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        until("both schedulers trying the lock", lambda: holder.execute(
            "SELECT count(*) >= 2 FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE '%%pg_try_advisory_xact_lock%%' AND pid <> pg_backend_pid()"
        ).fetchone() == (True,) and all(p.poll() is None for p in procs), timeout=90)
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        outs = [p.communicate(timeout=120)[0] for p in procs]
    assert sorted("skipped" in o for o in outs) == [False, True], outs
    with connect(baseline_db) as conn:
        row = conn.execute("SELECT count(*) FROM integrity.runs WHERE kind = 'check'").fetchone()
    assert row == (1,)


def test_metrics_file_and_graceful_stop(baseline_db: Database, tmp_path: Path) -> None:
    metrics = tmp_path / "mita.prom"
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MITA_", "SENTRY_"))}
    once = subprocess.run([exe, "--db", _url(baseline_db), "schedule", "--once", "--metrics-file", str(metrics),
                           "--html-dir", str(tmp_path / "html")], capture_output=True, text=True, env=env, timeout=120)
    assert once.returncode == 1, once.stderr  # the check's own code: the empty baseline's SCH001 is high
    pages = list((tmp_path / "html").glob("*.html"))
    assert len(pages) == 1 and "<svg" in pages[0].read_text()
    text = metrics.read_text()
    assert "mita_integrity_last_run_timestamp_seconds" in text
    assert prometheus_value(text, "mita_integrity_alert_failures_total") == 0
    assert prometheus_value(text, "mita_integrity_scheduled_runs_total", outcome="completed") == 1
    assert list(tmp_path.glob("mita.prom.*")) == []  # the textfile is written whole, under a temporary name
    proc = subprocess.Popen([exe, "--db", _url(baseline_db), "schedule", "--cron", "0 2 * * *"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the daemon is waiting (a loaded machine takes seconds to import everything)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert first.startswith("next check at") and "scheduler stopped" in out, first + out


@pytest.mark.parametrize("args,words", [
    (["--cron", "0 25 * * *"], "is not a cron expression"),
    (["--cron", "daily"], "is not a cron expression"),
    (["--timezone", "Mars/Olympus"], "is not a time zone"),
    (["--config", "/nonexistent/alerts.toml"], "no such file"),
])
def test_bad_schedule_input_is_one_line(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                        args: list[str], words: str) -> None:
    assert main(["--db", _url(baseline_db), "schedule", "--once", *args]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_a_malformed_alert_url_fails_at_start(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITA_SLACK_WEBHOOK_URL", "hooks.slack.com/services/x")
    assert main(["--db", _url(baseline_db), "schedule", "--once"]) == 3
    assert "MITA_SLACK_WEBHOOK_URL" in capsys.readouterr().err


def test_check_alert_records_and_alerts_once(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                             receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, smtp = receivers
    _sql(baseline_db, ORPHAN_PLAN)
    args = ["--db", _url(baseline_db), "check", "--alert", "--ignore", "SCH", "--format", "json"]
    assert main(args) == 2  # the check's own exit code
    err = capsys.readouterr().err
    assert "1 new" in err and "alert sent by slack" in err
    assert _counts(http, smtp) == {"slack": 1, "webhook": 1, "sentry": 1, "email": 1}
    assert main(args) == 2
    assert "no alert due" in capsys.readouterr().err
    assert _counts(http, smtp) == {"slack": 1, "webhook": 1, "sentry": 1, "email": 1}


def test_check_alert_without_channels_is_one_line(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MITA_SLACK_WEBHOOK_URL", "MITA_SMTP_URL", "SENTRY_DSN", "MITA_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    assert main(["--db", _url(baseline_db), "check", "--alert"]) == 3
    assert "no alert channel is configured" in capsys.readouterr().err


def test_metrics_endpoint_serves_the_last_run(baseline_db: Database) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from mita_integrity.check.run import CheckRequest, run_check
    from mita_integrity.schedule.runner import MetricsExporter

    from .receivers import free_port

    _sql(baseline_db, ORPHAN_PLAN)
    port = free_port()
    exporter = MetricsExporter(port=port)
    try:
        exporter.update(run_check(baseline_db, CheckRequest(select=["REF003"])), [])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
            content_type = answer.headers["Content-Type"]
    finally:
        exporter.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "mita_integrity_last_run_timestamp_seconds" in families
    samples = [s for f in families.values() for s in f.samples if s.labels.get("code") == "REF003"]
    assert samples and max(s.value for s in samples) == 1
    assert content_type.startswith("text/plain; version=0.0.4")
    assert prometheus_value(text, "mita_integrity_scheduled_runs_total", outcome="completed") == 0  # update() is no run
