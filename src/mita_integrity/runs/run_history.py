"""The run history in `integrity.runs`: listing runs, finding one by its id, and one line that sums it up."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ..database.errors import DatabaseStateError
from ..wording import counted
from .store import SCHEMA, exists, refuse_unreadable


@dataclass(frozen=True)
class RunRow:
    """One line of the run history."""

    id: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    db_user: str
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "user": self.db_user, "summary": self.summary}


# A run still 'running' whose session is gone was interrupted (killed, or its connection lost).
_RUN_COLUMNS = ("id::text, kind, CASE WHEN status = 'running' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
                "WHERE a.pid = backend_pid AND a.backend_start <= started_at) THEN 'interrupted' ELSE status END, "
                "started_at, finished_at, db_user, CASE WHEN status = 'running' AND kind = 'fix' THEN summary || "
                f"jsonb_build_object('archived_so_far', (SELECT count(*) FROM {SCHEMA}.archive x "
                "WHERE x.run_id = runs.id)) ELSE summary END")


def list_runs(cur: psycopg.Cursor[Any], limit: int = 50, kind: str | None = None) -> list[RunRow]:
    """Gives the newest runs first (none when the schema was never created)."""
    if not exists(cur):
        return []
    refuse_unreadable(cur, "reading the run history")
    where = "WHERE kind = %(kind)s" if kind else ""
    cur.execute(f"SELECT {_RUN_COLUMNS} FROM {SCHEMA}.runs {where} ORDER BY started_at DESC, id LIMIT %(n)s",
                {"kind": kind, "n": limit})
    return [RunRow(*row) for row in cur.fetchall()]


def get_run(cur: psycopg.Cursor[Any], run_id: str) -> RunRow:
    """Gives one run by its id (a unique prefix of at least 8 characters will do); raises if unknown."""
    text = run_id.strip().lower()
    if len(text) < 8 or any(c not in "0123456789abcdef-" for c in text):
        raise DatabaseStateError(f"{run_id!r} is not a run id", "list them with: mita-integrity runs")
    if not exists(cur):
        raise DatabaseStateError(f"no run {run_id}: this database has no run history yet",
                                 "runs are recorded by fix --apply")
    refuse_unreadable(cur, "reading the run history")
    cur.execute(f"SELECT {_RUN_COLUMNS} FROM {SCHEMA}.runs WHERE id::text LIKE %s ORDER BY started_at LIMIT 2",
                (text + "%",))
    rows = cur.fetchall()
    if not rows:
        raise DatabaseStateError(f"no run {run_id} in integrity.runs", "list them with: mita-integrity runs")
    if len(rows) > 1:
        raise DatabaseStateError(f"run id prefix {run_id!r} is ambiguous", "give more characters of the id")
    return RunRow(*rows[0])


def describe(run: RunRow) -> str:
    """Gives one line summing up a run."""
    s = run.summary
    if run.kind == "fix":
        codes = ", ".join(sorted({r["code"] for r in s.get("rules", []) if r.get("changed")})) or "no rule"
        if "archived_so_far" in s:
            so_far = f"{counted(s['archived_so_far'], 'row')} changed and archived so far"
            if run.status == "running":
                return f"running: {so_far}"
            return f"stopped before the end: {so_far} (re-run fix to finish, or undo this run)"
        return f"{counted(s.get('changed', 0), 'row')} changed ({codes})"
    if run.kind == "undo":
        conflicts = s.get("conflict_count", 0)
        return (f"{s.get('restored', 0):,} rows of run {str(s.get('undone_run', '?'))[:8]} restored"
                + (f", {conflicts:,} conflicts" if conflicts else ""))
    if run.kind == "check" and "rules_run" in s:
        failing = ", ".join(f"{s[sev]:,} {sev}" for sev in ("critical", "high", "medium", "low", "info") if s.get(sev))
        text = f"{failing + ' failing' if failing else 'nothing failing'}; {s.get('rules_run', 0):,} rules run"
        if s.get("mode"):  # check --incremental: incremental, or full where it had to fall back. First, so that
            text = f"{s['mode']}: {text}"  # a narrow terminal, which cuts the summary, still shows it
        alerts = describe_deliveries(s.get("deliveries"))
        return f"{text}; alerts: {alerts}" if alerts else text
    return json.dumps(s, sort_keys=True, default=str)[:80]


def describe_deliveries(deliveries: Any) -> str:
    """Gives `slack FAILED (HTTP 500 …), email ok` from a run's recorded deliveries ('' when none)."""
    if not isinstance(deliveries, list):
        return ""
    if not deliveries:
        return "none due"
    return ", ".join(f"{d.get('channel', '?')} ok" if d.get("ok") else
                     f"{d.get('channel', '?')} FAILED ({d.get('error') or 'no reason recorded'})"
                     for d in deliveries if isinstance(d, dict))
