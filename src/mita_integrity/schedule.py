"""`schedule`: the check on a cron schedule — recorded, alerted, exported as metrics — and never twice at once.

One scheduled run: take a PostgreSQL advisory lock in a transaction of its own (a second scheduler, on
this machine or another, finds it taken and skips), skip as well when a scheduled run was already
recorded for this cron slot, run the read-only check, record it (history.record gives what changed),
deliver the alerts (alerts.deliver: new and worsened findings, resolved ones; a failing channel never
stops the others nor changes the exit code), export the metrics, prune the history past its retention.
`serve` waits for each fire time of the cron expression in the chosen time zone and stops gracefully on
SIGTERM/SIGINT: the run in progress finishes, a second signal cancels it.
"""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from . import history, store
from .check import CheckRequest, run_check
from .connection import Database, connect, transaction
from .errors import UsageError
from .findings import Report

LOCK_KEY = 7_416_902_212
LOCK_WAIT_SECONDS = 1800.0  # a scheduler waits this long for another one's run


def parse_cron(expression: str) -> str:
    """Gives the expression when croniter accepts it (five fields); raises UsageError otherwise."""
    text = (expression or "").strip()
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise UsageError(f"--cron {expression!r} is not a cron expression",
                         "five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' for 02:00 daily")
    return text


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {name!r} is not a time zone", "use an IANA name such as UTC or Europe/Sofia") \
            from None


@dataclass(frozen=True)
class ScheduleRequest:
    """Everything `schedule` was asked for."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    check: CheckRequest = field(default_factory=CheckRequest)
    alerts: Any = None  # an alerts.AlertConfig, or None for no alerts
    retention_days: int = 90
    html_dir: Path | None = None

    def slot(self, now: datetime | None = None) -> datetime:
        """Gives the fire time this run belongs to: the latest one at or before now."""
        zone = parse_zone(self.timezone)
        moment = (now or datetime.now(UTC)).astimezone(zone)
        it = croniter(self.cron, moment.replace(second=0, microsecond=0) + timedelta(minutes=1))
        return it.get_prev(datetime).astimezone(UTC)


@dataclass
class ScheduledRun:
    """What one scheduled run did."""

    slot: datetime
    skipped: str | None = None  # why it did not run (another scheduler had it)
    report: Report | None = None
    delta: history.Delta | None = None
    deliveries: list[Any] = field(default_factory=list)
    pruned: int = 0

    @property
    def run_id(self) -> str | None:
        return self.report.run_id if self.report else None


@contextmanager
def _exclusive(db: Database, wait_seconds: float) -> Iterator[tuple[bool, datetime | None]]:
    """Holds the scheduler's advisory lock while the run lasts: a transaction-level lock, in a transaction of
    its own connection that stays open for the run (safe through a transaction pooler, which keeps that
    transaction on one server connection; a session lock there would be taken and released on different ones).

    Gives (got it, when it started to wait for it — None when it was free). A scheduler that had to wait
    skips when another one recorded a check while it waited, rather than run it a second time right after.
    """
    with connect(db) as conn, conn.transaction():
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")  # idle while the run works elsewhere
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        asked = row[0] if row else None
        deadline = time.monotonic() + wait_seconds
        waited = False
        while True:
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()
            got = bool(row and row[0])
            if got or time.monotonic() >= deadline:
                break
            waited = True
            time.sleep(0.2)
        yield got, asked if waited else None  # the commit at the end releases the lock


def _already_ran(db: Database, slot: datetime | None, since: datetime | None) -> bool:
    """Tells whether a scheduled check of this cron slot, or one recorded since `since`, exists already."""
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        if not store.exists(cur):
            return False
        cur.execute(f"SELECT 1 FROM {store.SCHEMA}.runs WHERE kind = 'check' AND status = 'completed' "
                    "AND options ? 'scheduled_slot' AND (options->>'scheduled_slot' = %s OR recorded_at >= %s) "
                    "LIMIT 1", (slot.isoformat() if slot else None, since))
        return cur.fetchone() is not None


def run_once(db: Database, request: ScheduleRequest, *, now: datetime | None = None,
             metrics: MetricsExporter | None = None, per_slot: bool = True) -> ScheduledRun:
    """One scheduled run: lock, check, record, alert, export, prune (see the module's docstring).

    per_slot: skip when a run of this cron slot was recorded already (schedulers on several machines);
    `schedule --once` runs now whatever ran before, and only the lock keeps two of them apart.
    """
    slot = request.slot(now) if per_slot else (now or datetime.now(UTC)).replace(microsecond=0)
    out = ScheduledRun(slot)
    with _exclusive(db, LOCK_WAIT_SECONDS) as (got, waited):
        if not got:
            out.skipped = f"another scheduler has held the lock for over {LOCK_WAIT_SECONDS:.0f} s"
            return out
        if _already_ran(db, slot if per_slot else None, waited):
            out.skipped = (f"the run of {slot.isoformat()} was already recorded" if not waited else
                           "another scheduler ran this check while this one waited for it")
            return out
        check = replace(request.check, extra={**request.check.extra, "scheduled_slot": slot.isoformat()})
        report = run_check(db, check)
        with connect(db) as conn:
            delta = history.record(conn, report)
        out.report, out.delta = report, delta
        if request.alerts is not None:
            from .alerts import deliver

            out.deliveries = deliver(request.alerts, delta, report, database=db.display)
            note_deliveries(db, report.run_id, out.deliveries)
        if request.html_dir is not None:
            _write_html(db, report, request.html_dir)
        if metrics is not None:
            metrics.update(report, out.deliveries)
        with connect(db) as conn:
            out.pruned = history.prune(conn, request.retention_days)
    return out


def note_deliveries(db: Database, run_id: str, deliveries: list[Any]) -> None:
    """Adds the deliveries (channel, ok, error) to the recorded run's summary."""
    from psycopg.types.json import Jsonb

    with connect(db) as conn, transaction(conn) as cur:
        cur.execute(f"UPDATE {store.SCHEMA}.runs SET summary = summary || %s WHERE id = %s",
                    (Jsonb({"deliveries": [d.to_json() for d in deliveries]}), run_id))


def _write_html(db: Database, report: Report, folder: Path) -> Path:
    """Writes the run's HTML report, with the trends of the recorded checks up to it."""
    from . import report as reports

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / reports.file_name(report, "html")
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        trend = history.trend(cur, until=report.run_id)
    path.write_text(reports.render(report, "html", trend=trend))
    return path


class MetricsExporter:
    """Serves the last run's Prometheus text on /metrics and/or writes it atomically for node_exporter."""

    def __init__(self, port: int | None = None, path: Path | None = None) -> None:
        self.text = "# no check has run yet\n"
        self.alert_failures = 0
        self.path = path
        self.server: http.server.ThreadingHTTPServer | None = None
        if port is not None:
            exporter = self

            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                    body = exporter.text.encode()
                    self.send_response(200 if self.path.startswith("/metrics") else 404)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args: Any) -> None:
                    pass

            self.server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
            threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def update(self, report: Report, deliveries: list[Any]) -> None:
        from . import report as reports

        self.alert_failures += sum(1 for d in deliveries if not d.ok)
        self.text = reports.render(report, "prometheus") + (
            "# HELP mita_integrity_alert_failures_total Alert deliveries that failed after their retries.\n"
            "# TYPE mita_integrity_alert_failures_total counter\n"
            f"mita_integrity_alert_failures_total {self.alert_failures}\n")
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_text(self.text)
            tmp.replace(self.path)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class Stopper:
    """Turns the first SIGTERM/SIGINT into a graceful stop (the run finishes), the second into cancel."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopping.is_set():
            raise KeyboardInterrupt
        self.stopping.set()


def serve(db: Database, request: ScheduleRequest, say: Callable[[str], None], stopper: Stopper,
          metrics: MetricsExporter | None = None, runs: int | None = None) -> int:
    """Runs the check at every fire time until stopped (or `runs` runs); gives the number of runs done."""
    zone = parse_zone(request.timezone)
    done = 0
    while not stopper.stopping.is_set() and (runs is None or done < runs):
        fire: datetime = croniter(request.cron, datetime.now(zone)).get_next(datetime)
        say(f"next check at {fire.isoformat()} ({request.timezone})")
        while not stopper.stopping.is_set() and datetime.now(zone) < fire:
            stopper.stopping.wait(min(30.0, max(0.05, (fire - datetime.now(zone)).total_seconds())))
        if stopper.stopping.is_set():
            break
        say(describe(run_once(db, request, now=fire, metrics=metrics)))
        done += 1
    say("scheduler stopped")
    return done


def describe(run: ScheduledRun) -> str:
    """Gives one line about a scheduled run."""
    if run.skipped:
        return f"skipped the check of {run.slot.isoformat()}: {run.skipped}"
    assert run.report is not None and run.delta is not None
    failing = sum(1 for r in run.report.results if r.failed)
    sent = ", ".join(f"{d.channel} {'ok' if d.ok else 'FAILED'}" for d in run.deliveries) or "no alert due"
    return (f"check run {run.run_id}: {failing} failing results; {len(run.delta.new)} new, "
            f"{len(run.delta.worsened)} worsened, {len(run.delta.resolved)} resolved; alerts: {sent}")

