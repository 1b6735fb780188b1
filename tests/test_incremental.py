"""Issue 19: `check --incremental` gives, result for result, what a full check gives on the same state."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mita_integrity.check import CheckRequest, run_check
from mita_integrity.connection import Database
from mita_integrity.findings import Report
from mita_integrity.history import record
from mita_integrity.seed import SeedOptions, seed_database


def seed(db: Database, **options: object) -> None:
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        seed_database(conn, SeedOptions(**options))  # type: ignore[arg-type]


def sql(db: Database, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def recorded(db: Database, **options: Any) -> Report:
    """Runs a check that is recorded (keeping what the next incremental check starts from)."""
    report = run_check(db, CheckRequest(keep_base=True, parallel=False, **options))
    with psycopg.connect(**db.connect_kwargs()) as conn:
        record(conn, report)
    return report


def outcome(report: Report) -> dict[tuple[str, str], tuple[str, int, int | None]]:
    return {(r.code, r.table): (r.status.value, r.count, r.groups) for r in report.results}


def same_as_full(db: Database, **options: Any) -> Report:
    """Runs check --incremental and a full check on the same state; asserts they agree result for result."""
    inc = run_check(db, CheckRequest(incremental=True, parallel=False, **options))
    full = run_check(db, CheckRequest(parallel=False, **options))
    assert outcome(inc) == outcome(full), {
        k: (v, outcome(full).get(k)) for k, v in outcome(inc).items() if outcome(full).get(k) != v}
    return inc


def how(report: Report) -> dict[str, tuple[str, str | None]]:
    return {f"{r.code}:{r.table}": (r.evaluated, r.evaluated_reason) for r in report.results}
