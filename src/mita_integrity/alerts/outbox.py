"""At-least-once alerts: what each channel has been told, kept in `integrity.alert_outbox`, and what is due.

A recorded check updates `integrity.findings` (history.py), whoever recorded it: `schedule`, `check --alert`
or a plain `check --record`. What a channel is due is the difference between those findings and what that
channel was last told: open findings it never heard of (new), findings whose count grew beyond the count it
heard (worsened), findings it heard of that are resolved now. Only a delivery the channel accepted moves its
row set forward (to the findings it was just told about, in one transaction); a channel that failed (a 500,
a refused connection, a deadline, the run's budget spent, a SIGKILL mid-delivery) keeps its old rows, so the
next run that delivers tells it again — once, as one message, whatever it missed in between. A channel with
nothing due moves forward too, so a finding that got better and then worse again is "worse" (as it is for
the run's own Delta).

A delivery accepted by the receiver but killed before its rows were written is sent again: at least once,
never lost. Deliveries are serialised by an advisory lock held in a transaction for the delivery (safe
through a transaction pooler), so two processes cannot both tell a channel the same news.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from ..database.connection import Database, connect, transaction
from ..findings import Report, Severity
from ..runs import store
from ..runs.findings_history import Delta, Finding
from .config import AlertConfig
from .dispatch import Delivery, plan_each, send_all
from .webhook import Budget, Sleep

TABLE = f"{store.SCHEMA}.alert_outbox"
_LOCK_KEY = 7_416_902_213  # serialises deliveries: one process tells the channels at a time


@dataclass(frozen=True)
class Open:
    """An open finding as integrity.findings holds it (the state every channel should end up told of)."""

    finding: Finding
    run_id: str | None


def _severity(text: str) -> Severity:
    try:
        return Severity(text)
    except ValueError:
        return Severity.INFO


def _findings(cur: psycopg.Cursor[Any]) -> tuple[dict[str, Open], dict[str, Finding]]:
    """Gives the open findings and the resolved ones, by fingerprint."""
    cur.execute(f"SELECT fingerprint, code, table_name, severity, message, first_seen, last_count, resolved_at, "
                f"last_run_id::text FROM {store.SCHEMA}.findings")
    open_, resolved = {}, {}
    for fp, code, table, severity, message, first_seen, count, resolved_at, run_id in cur.fetchall():
        finding = Finding(fp, code, table, _severity(severity), int(count), None, message, first_seen)
        if resolved_at is None:
            open_[fp] = Open(finding, run_id)
        else:
            resolved[fp] = finding
    return open_, resolved


def _rank(f: Finding) -> tuple[int, str, str]:
    return f.severity.rank, f.code, f.table


def due(cur: psycopg.Cursor[Any], channels: tuple[str, ...], run_id: str) -> tuple[dict[str, Delta], dict[str, Open]]:
    """Gives, per channel, the Delta still due to it (see the module), and the open findings it is measured
    against (what a channel is told once its delivery is accepted)."""
    open_, resolved = _findings(cur)
    cur.execute(f"SELECT channel, fingerprint, code, table_name, severity, count FROM {TABLE} "
                "WHERE channel = ANY(%s)", (list(channels),))
    told: dict[str, dict[str, tuple[int, str, str, str]]] = {c: {} for c in channels}
    for channel, fp, code, table, severity, count in cur.fetchall():
        told[channel][fp] = (int(count), code, table, severity)
    deltas = {}
    for channel in channels:
        heard = told[channel]
        new, worsened, gone = [], [], []
        for fp, item in open_.items():
            f = item.finding
            if fp not in heard:
                new.append(f)
            elif f.count > heard[fp][0]:
                worsened.append(Finding(fp, f.code, f.table, f.severity, f.count, heard[fp][0], f.message,
                                        f.first_seen))
        for fp, (count, code, table, severity) in heard.items():
            if fp not in open_:
                was = resolved.get(fp)
                gone.append(Finding(fp, code, table, _severity(severity), 0, count, was.message if was else "",
                                    was.first_seen if was else None))
        deltas[channel] = Delta(run_id, tuple(sorted(new, key=_rank)), tuple(sorted(worsened, key=_rank)),
                                tuple(sorted(gone, key=_rank)))
    return deltas, open_


def mark_told(conn: psycopg.Connection[Any], channel: str, told: dict[str, Open]) -> None:
    """Records that `channel` now knows the findings `told` (its rows replaced, in one transaction)."""
    with transaction(conn, lock_timeout_ms=5_000) as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE channel = %s", (channel,))
        cur.executemany(
            f"INSERT INTO {TABLE} (channel, fingerprint, code, table_name, severity, count, run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::uuid)",
            [(channel, fp, o.finding.code, o.finding.table, o.finding.severity.value, o.finding.count, o.run_id)
             for fp, o in told.items()])


@contextmanager
def _delivering(db: Database, wait_s: float) -> Iterator[None]:
    """Holds the outbox's advisory lock for the delivery: a transaction-level lock in a transaction of its own
    connection (through a transaction pooler the transaction stays on one server connection)."""
    with connect(db) as conn, conn.transaction():
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        conn.execute(f"SET LOCAL lock_timeout = {int(wait_s * 1000)}")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        yield


def deliver_due(db: Database, config: AlertConfig, report: Report, *, database: str, sleep: Sleep = time.sleep,
                budget: Budget | None = None) -> list[Delivery]:
    """Tells every configured channel what is due to it (see the module) as of the recorded run `report`;
    gives one Delivery per channel that had something to say. Never raises for a channel's failure."""
    budget = budget or Budget(config.delivery_budget_s, config.attempt_timeout_s)
    channels = config.channels
    with connect(db) as conn:
        store.ensure(conn)
        # Another process delivering holds the lock at most for its budget.
        with _delivering(db, config.delivery_budget_s + 60):
            with transaction(conn, read_only=True) as cur:
                deltas, told = due(cur, channels, report.run_id)
            alerts = plan_each(config, deltas, report, database=database)
            for channel in channels:
                if channel not in alerts:  # nothing due: it is up to date with these findings
                    mark_told(conn, channel, told)

            def accepted(delivery: Delivery) -> None:
                if delivery.ok:
                    mark_told(conn, delivery.channel, told)

            return send_all(config, alerts, report, deltas, sleep=sleep, budget=budget, on_delivery=accepted)
