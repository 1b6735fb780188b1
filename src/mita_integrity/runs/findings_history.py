"""The history of recorded checks: each finding's life, what changed since the last run, the trends.

A finding is a failing result, identified by a stable fingerprint (`code:table`). Recording a run stores
every result's status and count (integrity.run_results) and updates each finding's first and last seen
time and last count (integrity.findings). What changed since the previous run — new findings, findings
whose count grew, findings that disappeared — is the `Delta` that alerts are made of: an unchanged
database gives an empty Delta, so a second identical run alerts nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from ..database.connection import transaction
from ..findings import Report, Result, Severity, Status
from . import store

RESOLVING = (Status.PASS, Status.GUARANTEED)  # a result that proves a finding gone (not skipped, not error)


def fingerprint(code: str, table: str) -> str:
    return f"{code}:{table}"


@dataclass(frozen=True)
class Finding:
    """A failing result as the history sees it."""

    fingerprint: str
    code: str
    table: str
    severity: Severity
    count: int
    previous: int | None = None  # the count of the last run that saw it (None: new)
    message: str = ""
    first_seen: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "code": self.code, "table": self.table,
                "severity": self.severity.value, "count": self.count, "previous": self.previous,
                "message": self.message, "first_seen": self.first_seen.isoformat() if self.first_seen else None}


@dataclass(frozen=True)
class Delta:
    """What a recorded run found changed since the findings' last state."""

    run_id: str
    new: tuple[Finding, ...] = ()
    worsened: tuple[Finding, ...] = ()  # count grew
    resolved: tuple[Finding, ...] = ()  # failing before, passing now
    failing: tuple[Finding, ...] = field(default=(), repr=False)  # every finding of this run

    @property
    def changed(self) -> bool:
        return bool(self.new or self.worsened or self.resolved)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "new": [f.to_json() for f in self.new],
                "worsened": [f.to_json() for f in self.worsened], "resolved": [f.to_json() for f in self.resolved]}


def _finding(r: Result, previous: int | None = None, first_seen: datetime | None = None) -> Finding:
    return Finding(fingerprint(r.code, r.table), r.code, r.table, r.severity, r.count, previous, r.message,
                   first_seen)


def record(conn: psycopg.Connection[Any], report: Report) -> Delta:
    """Stores the run, its results and the findings' new state in one short write transaction; gives the Delta."""
    store.ensure(conn)
    with transaction(conn, lock_timeout_ms=5_000) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('mita-integrity findings'))")  # one recorder at a time
        store.insert_check_run(cur, report)
        if report.kept is not None:  # what the next check --incremental starts from (pruned with the run)
            from .change_log import PRUNE_HORIZON_S, prune
            from .check_bases import save

            try:
                with conn.transaction():  # a role that may not keep it still records the run (then: no base)
                    save(cur, report.run_id, report.kept)
                try:
                    with conn.transaction():  # the change log's entries every usable base can see (change_log.py)
                        prune(cur, PRUNE_HORIZON_S)
                except psycopg.errors.LockNotAvailable:
                    pass  # a session that edited the log holds its bound (the guard): the next recorded check prunes
            except psycopg.errors.InsufficientPrivilege:
                pass
        cur.executemany(
            f"INSERT INTO {store.SCHEMA}.run_results (run_id, fingerprint, code, table_name, severity, status, count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(report.run_id, fingerprint(r.code, r.table), r.code, r.table, r.severity.value, r.status.value, r.count)
             for r in report.results])
        cur.execute(f"SELECT fingerprint, last_count, first_seen FROM {store.SCHEMA}.findings "
                    "WHERE resolved_at IS NULL")
        open_ = {fp: (int(count), seen) for fp, count, seen in cur.fetchall()}
        new, worsened, failing, rows = [], [], [], []
        for r in (r for r in report.results if r.failed):
            fp = fingerprint(r.code, r.table)
            before = open_.get(fp)
            finding = _finding(r, before[0] if before else None, before[1] if before else report.started_at)
            failing.append(finding)
            if before is None:
                new.append(finding)
            elif r.count > before[0]:
                worsened.append(finding)
            rows.append({"fp": fp, "code": r.code, "table": r.table, "sev": r.severity.value, "msg": r.message,
                         "at": report.started_at, "n": r.count, "run": report.run_id})
        cur.executemany(
            f"""INSERT INTO {store.SCHEMA}.findings AS f (fingerprint, code, table_name, severity, message,
                    first_seen, last_seen, last_count, last_run_id)
                VALUES (%(fp)s, %(code)s, %(table)s, %(sev)s, %(msg)s, %(at)s, %(at)s, %(n)s, %(run)s)
                ON CONFLICT (fingerprint) DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message,
                    last_seen = EXCLUDED.last_seen, last_count = EXCLUDED.last_count,
                    last_run_id = EXCLUDED.last_run_id, resolved_at = NULL,
                    first_seen = CASE WHEN f.resolved_at IS NULL THEN f.first_seen ELSE EXCLUDED.first_seen END""",
            rows)
        resolved = []
        for r in (r for r in report.results if r.status in RESOLVING):
            fp = fingerprint(r.code, r.table)
            if fp in open_:
                resolved.append(Finding(fp, r.code, r.table, r.severity, 0, open_[fp][0], r.message, open_[fp][1]))
        cur.executemany(f"UPDATE {store.SCHEMA}.findings SET resolved_at = %s, last_count = 0, last_run_id = %s "
                        "WHERE fingerprint = %s", [(report.started_at, report.run_id, f.fingerprint) for f in resolved])
    return Delta(report.run_id, tuple(new), tuple(worsened), tuple(resolved), tuple(failing))


@dataclass(frozen=True)
class Trend:
    """The failing counts of recorded checks, oldest first: per run its time, and per fingerprint the count."""

    runs: tuple[tuple[str, datetime], ...]
    counts: dict[str, tuple[int | None, ...]]  # fingerprint -> count per run (None: not evaluated)
    totals: tuple[int, ...]  # failing results per run


def trend(cur: psycopg.Cursor[Any], limit: int = 30, until: str | None = None) -> Trend:
    """Gives the last `limit` recorded check runs (up to run `until`) as series per fingerprint."""
    if not store.exists(cur):
        return Trend((), {}, ())
    cur.execute(f"""SELECT id::text, started_at FROM {store.SCHEMA}.runs
                     WHERE kind = 'check' AND status = 'completed'
                       AND (%(until)s::uuid IS NULL OR started_at <= (SELECT started_at FROM {store.SCHEMA}.runs
                                                                    WHERE id = %(until)s::uuid))
                     ORDER BY started_at DESC LIMIT %(n)s""", {"until": until, "n": limit})
    runs = tuple(reversed([(str(i), t) for i, t in cur.fetchall()]))
    ids = [r[0] for r in runs]
    cur.execute(f"SELECT run_id::text, fingerprint, status, count FROM {store.SCHEMA}.run_results "
                "WHERE run_id = ANY(%s::uuid[])", (ids,))
    per_run: dict[str, dict[str, int]] = {i: {} for i in ids}
    failing = {i: 0 for i in ids}
    for run_id, fp, status, count in cur.fetchall():
        per_run[run_id][fp] = int(count) if status == "fail" else 0
        failing[run_id] += status == "fail"
    prints = sorted({fp for counts in per_run.values() for fp, n in counts.items() if n})
    counts = {fp: tuple(per_run[i].get(fp) for i in ids) for fp in prints}
    return Trend(runs, counts, tuple(failing[i] for i in ids))


def prune(conn: psycopg.Connection[Any], retention_days: int = 90) -> int:
    """Deletes recorded check runs older than the retention (their results go with them); gives how many."""
    with transaction(conn, lock_timeout_ms=5_000) as cur:
        if not store.exists(cur):
            return 0
        cur.execute(f"DELETE FROM {store.SCHEMA}.runs WHERE kind = 'check' "
                    "AND started_at < now() - make_interval(days => %s)", (retention_days,))
        return cur.rowcount


def record_check(conn: psycopg.Connection[Any], report: Report) -> str:
    """Stores a finished check run with its results and findings (see history.record); gives its id."""
    return record(conn, report).run_id
