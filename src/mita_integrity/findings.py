"""Findings are values: the result of one rule on one table, and the report of one check run.

Field names follow DESIGN.md's JSON report (`schema_version: 1`), which tests outside this repository
read: change them only together with the schema version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1


class Severity(enum.Enum):
    """How bad a failing rule is; ordered from worst to harmless."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Gives 0 for critical … 4 for info (lower is worse)."""
        return list(Severity).index(self)


class Status(enum.Enum):
    """What became of a rule on a table."""

    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"  # its table or column is absent
    GUARANTEED = "guaranteed"  # a validated constraint rules its violations out; not scanned
    ERROR = "error"  # the rule's query failed; the others still ran


class FixSafety(enum.Enum):
    """Whether a repair may run without a person deciding."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    NONE = "none"


# The seed's diagnostic script has 14 sections; 1 (overview) and 2 (row counts) are report headers
# and 13 is `--since`.
SECTIONS: dict[int, str] = {
    1: "Overview",
    2: "Row counts",
    3: "Missing critical values",
    4: "Orphaned records",
    5: "Duplicates",
    6: "Impossible timestamps",
    7: "Budget consistency",
    8: "Goal consistency",
    9: "Amounts and currencies",
    10: "Soft deletion",
    11: "Schema and constraints",
    12: "Users and onboarding",
    13: "Recent data (--since)",
    14: "Calendar and physical storage",
}


@dataclass(frozen=True)
class Result:
    """One rule's outcome on one table."""

    code: str
    name: str
    section: int
    severity: Severity
    status: Status
    table: str
    column: str | None = None
    count: int = 0  # violating rows; for duplicates the surplus rows
    groups: int | None = None  # duplicates only: the number of duplicated keys
    message: str = ""
    sample: tuple[str, ...] = ()  # primary keys, never personal data
    fix_available: bool = False
    fix_safety: FixSafety = FixSafety.NONE
    reason: str | None = None  # for skipped, guaranteed and error
    duration_ms: int = 0
    hint: str = ""
    unit: str = "row"  # what `count` counts, for reading aloud: row, key, constraint…
    evaluated: str = "full"  # check --incremental: "incremental" when only what changed was read
    evaluated_reason: str | None = None  # why an incremental check evaluated this result in full

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def __str__(self) -> str:
        keys = f"[id={', '.join(self.sample[:3])}{'…' if len(self.sample) > 3 else ''}]" if self.sample else ""
        return f"{self.table}{keys}: {self.code} {self.message}"

    def to_json(self) -> dict[str, Any]:
        """Gives the result as DESIGN's JSON report writes it (every field present)."""
        return {
            "code": self.code,
            "name": self.name,
            "section": self.section,
            "severity": self.severity.value,
            "status": self.status.value,
            "table": self.table,
            "column": self.column,
            "count": self.count,
            "groups": self.groups,
            "message": self.message,
            "sample": list(self.sample),
            "fix": {"available": self.fix_available, "safety": self.fix_safety.value},
            "reason": self.reason,
            "duration_ms": self.duration_ms,
            # Additive to schema_version 1 (check --incremental): how the result was read, and why in full.
            "evaluated": self.evaluated,
            "evaluated_reason": self.evaluated_reason,
        }


@dataclass(frozen=True)
class TableStats:
    """Row counts and vacuum times of one table (the report's section 2)."""

    name: str
    live_rows: int
    dead_rows: int
    last_vacuum: datetime | None
    last_autovacuum: datetime | None


@dataclass(frozen=True)
class DatabaseInfo:
    """Which database was checked (URL masked)."""

    url: str
    name: str
    server_version: str
    user: str
    alembic_revision: str | None


@dataclass(frozen=True)
class PassTiming:
    """One statement group of a check (a table's row pass, a family's queries): what it read and how long it took.

    Written to the JSON report (`passes`, additive to schema_version 1) so benchmarks and --debug can see
    where a check's time goes.
    """

    name: str
    rules: tuple[str, ...]
    tables: tuple[str, ...]
    duration_ms: int
    connection: int = 1  # 1: the snapshot's own connection; 2: the second one that imported its snapshot

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rules": list(self.rules), "tables": list(self.tables),
                "duration_ms": self.duration_ms, "connection": self.connection}


@dataclass(frozen=True)
class Report:
    """One check run."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    database: DatabaseInfo
    tables: tuple[TableStats, ...]
    results: tuple[Result, ...]
    tool_version: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    passes: tuple[PassTiming, ...] = ()
    mode: str = "full"  # "incremental": started from the recorded run base_run (check --incremental)
    base_run: str | None = None
    kept: Any = None  # check_bases.Kept: what recording this run stores for the next incremental check

    @property
    def duration_ms(self) -> int:
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def summary(self) -> dict[str, int]:
        """Gives the counts of failing results per severity, and of rules run, skipped and guaranteed."""
        out = {sev.value: 0 for sev in Severity}
        for result in self.results:
            if result.failed:
                out[result.severity.value] += 1
        out["rules_run"] = sum(r.status in (Status.PASS, Status.FAIL, Status.ERROR) for r in self.results)
        out["rules_skipped"] = sum(r.status is Status.SKIPPED for r in self.results)
        out["rules_guaranteed"] = sum(r.status is Status.GUARANTEED for r in self.results)
        return out

    def worst(self) -> Severity | None:
        """Gives the worst severity among failing results (None when nothing fails)."""
        failing = [r.severity for r in self.results if r.failed]
        return min(failing, key=lambda s: s.rank) if failing else None

    def to_json(self) -> dict[str, Any]:
        """Gives the report as DESIGN's JSON (schema_version 1), every field present."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "mita-integrity", "version": self.tool_version},
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_ms": self.duration_ms,
            "database": {
                "url": self.database.url,
                "name": self.database.name,
                "server_version": self.database.server_version,
                "user": self.database.user,
                "alembic_revision": self.database.alembic_revision,
            },
            "tables": [
                {
                    "name": t.name,
                    "live_rows": t.live_rows,
                    "dead_rows": t.dead_rows,
                    "last_vacuum": t.last_vacuum.isoformat() if t.last_vacuum else None,
                    "last_autovacuum": t.last_autovacuum.isoformat() if t.last_autovacuum else None,
                }
                for t in self.tables
            ],
            "summary": self.summary(),
            "results": [r.to_json() for r in self.results],
            # Additive to schema_version 1: whether constraints were trusted, and where the time went.
            "no_guarantees": bool(self.options.get("no_guarantees", False)),
            "passes": [p.to_json() for p in self.passes],
            "mode": self.mode,
            "base_run": self.base_run,
        }
