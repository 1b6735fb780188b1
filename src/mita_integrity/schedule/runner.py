"""`schedule`: the check on a cron schedule — recorded, alerted, exported as metrics — and never twice at once.

One scheduled run: take a PostgreSQL advisory lock in a transaction of its own (a second scheduler, on
this machine or another, finds it taken and skips), skip as well when a scheduled run was already
recorded for this cron slot, run the read-only check, record it (history.record gives what changed),
tell every alert channel what is due to it (alerts.deliver_due: at least once per channel, whatever ran
before; a failing channel never stops the others nor changes the exit code; all within one time budget),
export the metrics, prune the history past its retention.

`serve` is the daemon. It waits for each fire time of the cron expression, as an absolute instant
(fire_times.py: the rule for the days the clocks change), and never dies of a failed run: a database that
is down, a lost connection, even a bug, becomes a logged line, a counted failure in the metrics and an
alert to the channels that can still be reached; the schedule goes on. Only a bad configuration at start
stops it. It stops gracefully on SIGTERM/SIGINT: the run in progress finishes, a second signal cancels it.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..check.run import CheckRequest, run_check
from ..database.connection import Database, connect, transaction
from ..database.errors import ConnectionFailed, MitaIntegrityError, connection_lost, is_connection_lost
from ..database.urls import mask_secrets
from ..findings import Report
from ..runs import findings_history as history
from ..runs import store
from .fire_times import last_fire, next_fire, parse_cron, parse_zone

__all__ = ["LOCK_KEY", "Clock", "MetricsExporter", "ScheduleRequest", "ScheduledRun", "Stopper", "attempt",
           "deliver_pending", "describe", "parse_cron", "parse_zone", "preflight", "run_once", "serve"]

LOCK_KEY = 7_416_902_212
LOCK_WAIT_SECONDS = 1800.0  # a scheduler waits this long for another one's run
MAX_WAIT_S = 60.0  # the daemon looks at the clock at least this often while it waits (a suspended laptop)


@dataclass(frozen=True)
class ScheduleRequest:
    """Everything `schedule` was asked for."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    check: CheckRequest = field(default_factory=CheckRequest)
    alerts: Any = None  # an alerts.AlertConfig, or None for no alerts
    retention_days: int = 90
    html_dir: Path | None = None
    incremental: bool = False  # check --incremental, with a full run at least every full_every_s
    full_every_s: int = 7 * 86400

    def slot(self, now: datetime | None = None) -> datetime:
        """Gives the fire time this run belongs to: the latest one at or before now (an instant, UTC)."""
        return last_fire(self.cron, parse_zone(self.timezone), now or datetime.now(UTC))


@dataclass
class ScheduledRun:
    """What one scheduled run did."""

    slot: datetime
    skipped: str | None = None  # why it did not run (another scheduler had it)
    report: Report | None = None
    delta: history.Delta | None = None
    deliveries: list[Any] = field(default_factory=list)
    pruned: int = 0
    failure: str | None = None  # why it could not run (one line, no secrets)
    error: BaseException | None = field(default=None, repr=False)  # what `schedule --once` re-raises
    repeated: bool = False  # the same failure as the run before, which was alerted already

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
    """One scheduled run: lock, check, record, alert, export, prune (see the module's docstring); raises
    when the database fails (`attempt` is the run that never raises).

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
        if request.incremental:
            check = replace(check, incremental=True, keep_base=True,
                            full_reason=_full_due(db, request.full_every_s, slot))
        report = run_check(db, check)
        with connect(db) as conn:
            delta = history.record(conn, report)
        out.report, out.delta = report, delta
        if request.alerts is not None:
            from ..alerts import deliver_due

            out.deliveries = deliver_due(db, request.alerts, report, database=db.display)
            note_deliveries(db, report.run_id, out.deliveries)
        if request.html_dir is not None:
            _write_html(db, report, request.html_dir)
        if metrics is not None:
            metrics.record(out)
        with connect(db) as conn:
            out.pruned = history.prune(conn, request.retention_days)
    return out


def _full_due(db: Database, every_s: int, now: datetime) -> str | None:
    """Gives why this incremental run must be a full one (--full-every), or None.

    The last full check is the last recorded one whose summary does not say `incremental` (a full run, or an
    incremental one that fell back to full): alerts and trends read the same results either way.
    """
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        if not store.exists(cur):
            return None  # nothing recorded yet: the check itself says it has no base
        cur.execute(f"SELECT max(started_at) FROM {store.SCHEMA}.runs WHERE kind = 'check' AND status = 'completed' "
                    "AND coalesce(summary->>'mode', 'full') <> 'incremental'")
        row = cur.fetchone()
    last = row[0] if row else None
    if last is None:
        return "no full check recorded yet (schedule --full-every)"
    if (now - last).total_seconds() >= every_s:
        return f"the last full check ran {last:%Y-%m-%d %H:%M} UTC: one is due (schedule --full-every)"
    return None


def failure_reason(exc: BaseException) -> str:
    """Gives one line, without secrets, saying why a scheduled run failed."""
    if isinstance(exc, MitaIntegrityError):
        return exc.one_line()
    if is_connection_lost(exc):
        return connection_lost(exc, "the scheduled check", "nothing of this run was recorded").message
    text = " ".join(mask_secrets(str(exc)).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def attempt(db: Database, request: ScheduleRequest, slot: datetime, *, metrics: MetricsExporter | None = None,
            per_slot: bool = True, alerted: str | None = None) -> ScheduledRun:
    """One scheduled run that never raises (but for a second Ctrl-C): a failure gives a run with `failure`
    set, alerted to the channels critical findings go to, and counted in the metrics. `alerted`: the failure
    of the run before, alerted then; the same failure again is logged and counted, not alerted again (an
    outage under `* * * * *` is one alert, not one a minute)."""
    try:
        return run_once(db, request, now=slot, metrics=metrics, per_slot=per_slot)
    except Exception as exc:  # noqa: BLE001 - the daemon outlives any one run: logged, counted, alerted
        out = ScheduledRun(slot if per_slot else slot.replace(microsecond=0), failure=failure_reason(exc), error=exc)
    out.repeated = out.failure == alerted
    if request.alerts is not None and not out.repeated:
        from ..alerts import failure_alerts, send_all

        alerts = failure_alerts(request.alerts, database=db.display, reason=out.failure or "", slot=out.slot)
        out.deliveries = send_all(request.alerts, alerts, None, {})
    if metrics is not None:
        metrics.record(out)
    return out


def deliver_pending(db: Database, request: ScheduleRequest) -> str | None:
    """Tells each channel what is still due to it as of the last recorded check (a delivery cut short by a
    kill, or a channel that was down), when the daemon starts; gives a line saying what was sent, or None
    when there are no alerts or nothing recorded. A failure is a line too: the daemon starts anyway."""
    if request.alerts is None:
        return None
    from ..alerts import deliver_due
    from ..report.stored import load_report

    try:
        with connect(db) as conn, transaction(conn, read_only=True) as cur:
            if not store.exists(cur):
                return None
            cur.execute(f"SELECT id::text FROM {store.SCHEMA}.runs WHERE kind = 'check' AND status = 'completed' "
                        "AND report IS NOT NULL ORDER BY started_at DESC LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return None
            report = load_report(cur, row[0])
        deliveries = deliver_due(db, request.alerts, report, database=db.display)
    except Exception as exc:  # noqa: BLE001 - the next run delivers it; the daemon starts regardless
        return f"warning: could not deliver the pending alerts: {failure_reason(exc)}"
    if not deliveries:
        return f"no alert pending since check run {report.run_id}"
    return f"pending alerts of check run {report.run_id}: {', '.join(d.describe() for d in deliveries)}"


def preflight(db: Database) -> str | None:
    """Connects once before the daemon starts: raises for a configuration the database refuses (a wrong
    password, a database or role that does not exist); gives a warning line when it is only unreachable now
    (the daemon starts anyway and its runs fail until the server is back); None when all is well."""
    import psycopg

    try:
        with connect(db):
            return None
    except ConnectionFailed as exc:
        if exc.refused:
            raise
        return f"warning: {exc.one_line()}; starting anyway: each run until it is back is logged as failed"
    except psycopg.Error as exc:  # connect() lets through only what a standby's replay did to a starting session
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"warning: replay on this standby ended the first session ({reason}); starting anyway"


def note_deliveries(db: Database, run_id: str, deliveries: list[Any]) -> None:
    """Adds the deliveries (channel, ok, error) to the recorded run's summary."""
    from psycopg.types.json import Jsonb

    with connect(db) as conn, transaction(conn) as cur:
        cur.execute(f"UPDATE {store.SCHEMA}.runs SET summary = summary || %s WHERE id = %s",
                    (Jsonb({"deliveries": [d.to_json() for d in deliveries]}), run_id))


def _write_html(db: Database, report: Report, folder: Path) -> Path:
    """Writes the run's HTML report, with the trends of the recorded checks up to it."""
    from .. import report as reports

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / reports.file_name(report, "html")
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        trend = history.trend(cur, until=report.run_id)
    path.write_text(reports.render(report, "html", trend=trend))
    return path


def _reason_kind(error: str | None) -> str:
    """Gives a failure's kind for a metric label (a few values, never the text): http_500, deadline, …"""
    text = (error or "").lower()
    http = re.search(r"\bhttp (\d{3})\b", text)
    if http:
        return f"http_{http.group(1)}"
    for word, kind in (("budget", "budget"), ("deadline", "deadline"), ("unreachable", "unreachable"),
                       ("refused", "refused"), ("closed the connection", "unreachable")):
        if word in text:
            return kind
    return "error"


class MetricsExporter:
    """Serves the last run's metrics on /metrics and/or writes them atomically for node_exporter, through
    prometheus-client (its registry, HTTP server and `write_to_textfile`).

    Beside the last check's own metrics: scheduled runs by outcome (completed, failed, skipped), alert
    deliveries by channel and outcome, and each channel's last outcome with the kind of its failure.
    """

    def __init__(self, port: int | None = None, path: Path | None = None) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.report_metrics: list[Any] = []
        self.alert_failures = 0
        self.runs: Counter[str] = Counter()
        self.deliveries: Counter[tuple[str, str]] = Counter()
        self.last_delivery: dict[str, Any] = {}
        self.last_failure_at: float | None = None
        self.path = path
        self.lock = threading.Lock()  # a scrape (the server's thread) reads what a run is updating
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # a collector: asked for its families at each scrape and write
        self.server: Any = None
        if port is not None:
            self.server, _thread = start_http_server(port, addr="0.0.0.0", registry=self.registry)

    @property
    def text(self) -> str:
        """Gives what a scrape gives now."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def update(self, report: Report, deliveries: list[Any]) -> None:
        """Takes a completed run's report and deliveries."""
        from ..report.prometheus_metrics import report_metrics

        families = report_metrics(report)
        with self.lock:
            self.report_metrics = families
            self._deliveries(deliveries)
        self._publish()

    def record(self, run: ScheduledRun) -> None:
        """Takes any scheduled run: completed, skipped, or failed."""
        if run.report is not None and not run.skipped:
            with self.lock:
                self.runs["completed"] += 1
            self.update(run.report, run.deliveries)
            return
        with self.lock:
            if run.failure is not None:
                self.runs["failed"] += 1
                self.last_failure_at = time.time()
            else:
                self.runs["skipped"] += 1
            self._deliveries(run.deliveries)
        self._publish()

    def _deliveries(self, deliveries: list[Any]) -> None:
        for d in deliveries:
            self.alert_failures += not d.ok
            self.deliveries[(d.channel, d.outcome)] += 1
            self.last_delivery[d.channel] = d

    def collect(self) -> list[Any]:
        """Gives the metric families as they are now: the last check's, then the scheduler's own."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self.lock:
            families = list(self.report_metrics)
            families.append(CounterMetricFamily(
                "mita_integrity_alert_failures_total", "Alert deliveries that failed after their retries.",
                value=self.alert_failures))
            runs = CounterMetricFamily("mita_integrity_scheduled_runs_total",
                                       "Scheduled runs by outcome (failed: could not run).", labels=("outcome",))
            for outcome in ("completed", "failed", "skipped"):
                runs.add_metric((outcome,), self.runs[outcome])
            families.append(runs)
            if self.last_failure_at is not None:
                families.append(GaugeMetricFamily(
                    "mita_integrity_scheduled_run_last_failure_timestamp_seconds",
                    "When a scheduled run last could not run.", value=self.last_failure_at))
            if self.deliveries:
                sent = CounterMetricFamily("mita_integrity_alert_deliveries_total",
                                           "Alert deliveries by channel and outcome.", labels=("channel", "outcome"))
                for (channel, outcome), n in sorted(self.deliveries.items()):
                    sent.add_metric((channel, outcome), n)
                families.append(sent)
            if self.last_delivery:
                last = GaugeMetricFamily("mita_integrity_alert_last_delivery_ok",
                                         "Whether a channel's last delivery was accepted (reason: the kind of its "
                                         "failure).", labels=("channel", "reason"))
                for channel, d in sorted(self.last_delivery.items()):
                    last.add_metric((channel, "" if d.ok else _reason_kind(d.error)), int(d.ok))
                families.append(last)
        return families

    def _publish(self) -> None:
        if self.path is not None:
            from prometheus_client import write_to_textfile

            write_to_textfile(str(self.path), self.registry)

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
        # Not Event.set() here: the handler runs in the main thread, which may be holding that Event's own lock
        # (inside Event.wait), and set() would wait for it forever. A thread sets it once the handler returns.
        threading.Thread(target=self.stopping.set, name="mita-integrity-stop", daemon=True).start()


class Clock:
    """The daemon's time: the instant now (UTC), and a wait a stop cuts short (tests give their own)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(seconds)


def serve(db: Database, request: ScheduleRequest, say: Callable[[str], None], stopper: Stopper,
          metrics: MetricsExporter | None = None, runs: int | None = None, *, clock: Clock | None = None,
          run: Callable[[datetime], ScheduledRun] | None = None) -> int:
    """Runs the check at every fire time until stopped (or `runs` runs); gives the number of runs done.

    Fire times are instants (fire_times.next_fire), each strictly after the last one fired and after the
    end of the run that fired it: a clock change cannot bring one back, and slots missed while a run
    overran are skipped, not run in a burst. A run never ends the loop (`attempt`).
    """
    clock = clock or Clock()
    zone = parse_zone(request.timezone)
    failing: list[str | None] = [None]  # the failure of the last run, if it failed

    def attempt_and_remember(slot: datetime) -> ScheduledRun:
        out = attempt(db, request, slot, metrics=metrics, alerted=failing[0])
        failing[0] = out.failure
        return out

    run = run or attempt_and_remember
    done = 0
    after = clock.now()
    while not stopper.stopping.is_set() and (runs is None or done < runs):
        fire = next_fire(request.cron, zone, after)
        say(f"next check at {fire.astimezone(zone).isoformat()} ({request.timezone})")
        while not stopper.stopping.is_set():
            left = (fire - clock.now()).total_seconds()
            if left <= 0:
                break
            clock.wait(min(MAX_WAIT_S, left), stopper.stopping)
        if stopper.stopping.is_set():
            break
        say(describe(run(fire)))
        done += 1
        after = max(fire, clock.now())
    say("scheduler stopped")
    return done


def describe(run: ScheduledRun) -> str:
    """Gives one line about a scheduled run, with each alert channel's outcome and reason."""
    sent = ", ".join(d.describe() for d in run.deliveries) or (
        "not sent again (the same failure as the run before)" if run.repeated else "no alert due")
    if run.skipped:
        return f"skipped the check of {run.slot.isoformat()}: {run.skipped}"
    if run.failure is not None:
        return f"the check of {run.slot.isoformat()} FAILED: {run.failure}; alerts: {sent}"
    assert run.report is not None and run.delta is not None
    failing = sum(1 for r in run.report.results if r.failed)
    return (f"check run {run.run_id}: {failing} failing results; {len(run.delta.new)} new, "
            f"{len(run.delta.worsened)} worsened, {len(run.delta.resolved)} resolved; alerts: {sent}")
