"""A recorded check run back as a `Report`: from its JSON (integrity.runs.report), to render it again.

The JSON report (DESIGN's `schema_version: 1`) carries every field of a result but two that only the
renderers use — the one-line hint and the unit of the count; they come back from the rule catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg

from ..database.errors import DatabaseStateError
from ..findings import SCHEMA_VERSION, DatabaseInfo, FixSafety, Report, Result, Severity, Status, TableStats


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def result_from_json(doc: Mapping[str, Any]) -> Result:
    """Gives the Result a `Result.to_json()` wrote (hint and unit from the catalogue)."""
    from ..check.rule_registry import BY_CODE

    rule = BY_CODE.get(str(doc["code"]))
    fix = doc.get("fix") or {}
    groups = doc.get("groups")
    return Result(
        code=str(doc["code"]), name=str(doc.get("name", "")), section=int(doc.get("section", 0)),
        severity=Severity(doc["severity"]), status=Status(doc["status"]), table=str(doc.get("table", "")),
        column=doc.get("column"), count=int(doc.get("count", 0)), groups=None if groups is None else int(groups),
        message=str(doc.get("message", "")), sample=tuple(str(k) for k in doc.get("sample", ())),
        fix_available=bool(fix.get("available", False)), fix_safety=FixSafety(fix.get("safety", "none")),
        reason=doc.get("reason"), duration_ms=int(doc.get("duration_ms", 0)),
        hint=rule.hint if rule else "", unit=rule.unit if rule else "row",
        evaluated=str(doc.get("evaluated") or "full"), evaluated_reason=doc.get("evaluated_reason"),
    )


def report_from_json(doc: Mapping[str, Any], *, options: Mapping[str, Any] | None = None) -> Report:
    """Gives the Report a `Report.to_json()` wrote; `options` are the run's own (the JSON does not carry them)."""
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DatabaseStateError(f"the stored report has schema_version {version!r}, not {SCHEMA_VERSION}",
                                 "render it with the mita-integrity version that recorded it")
    db = doc.get("database") or {}
    started = _moment(doc["started_at"])
    finished = _moment(doc.get("finished_at")) or started
    assert started is not None and finished is not None
    return Report(
        run_id=str(doc["run_id"]),
        started_at=started,
        finished_at=finished,
        database=DatabaseInfo(url=str(db.get("url", "")), name=str(db.get("name", "")),
                              server_version=str(db.get("server_version", "")), user=str(db.get("user", "")),
                              alembic_revision=db.get("alembic_revision")),
        tables=tuple(TableStats(str(t["name"]), int(t.get("live_rows", 0)), int(t.get("dead_rows", 0)),
                                _moment(t.get("last_vacuum")), _moment(t.get("last_autovacuum")))
                     for t in doc.get("tables", ())),
        results=tuple(result_from_json(r) for r in doc.get("results", ())),
        tool_version=str((doc.get("tool") or {}).get("version", "")),
        options=dict(options or {}),
        mode=str(doc.get("mode") or "full"), base_run=doc.get("base_run"),
    )


def load_report(cur: psycopg.Cursor[Any], run_id: str) -> Report:
    """Gives the report of the recorded check run `run_id` (a full id) from integrity.runs."""
    from ..runs import store

    cur.execute(f"SELECT kind, report, options FROM {store.SCHEMA}.runs WHERE id = %s::uuid", (run_id,))
    row = cur.fetchone()
    if row is None:
        raise DatabaseStateError(f"no run {run_id} in integrity.runs", "list them with: mita-integrity runs")
    kind, doc, options = row
    if kind != "check":
        raise DatabaseStateError(f"run {run_id} is a {kind} run: only a check run has a report",
                                 "list the check runs with: mita-integrity runs --kind check")
    if not doc:
        raise DatabaseStateError(f"check run {run_id} stored no report",
                                 "record one with: mita-integrity check --record")
    return report_from_json(doc, options=options if isinstance(options, dict) else None)
