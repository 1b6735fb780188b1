"""`check`: the catalogue run in one read-only snapshot, as a Report value, plus the exit code it implies."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from . import __version__
from .connection import Database, connect, transaction
from .errors import DatabaseStateError, UsageError, connection_lost, is_connection_lost
from .findings import DatabaseInfo, Report, Severity, TableStats
from .rules import engine
from .rules.context import CheckContext, CheckOptions, Schema, load_schema
from .rules.dayboundary import check_boundary

if TYPE_CHECKING:
    from .project import Project

FAIL_ON = ("critical", "high", "medium", "low", "never")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _no_project() -> Project:
    from .project import Project  # imported when used: the CLI starts faster without it

    return Project()


@dataclass(frozen=True)
class CheckRequest:
    """Everything `check` was asked for."""

    select: Sequence[str] = ()
    ignore: Sequence[str] = ()
    sample: int = 10
    since: str | None = None
    budget_days: int = 30
    day_boundary: str = "utc"
    physical: bool = False
    statement_timeout_ms: int = 300_000
    lock_timeout_ms: int = 5_000
    extra: dict[str, Any] = field(default_factory=dict)
    project: Project = field(default_factory=_no_project)  # the project file's rules and settings


def parse_duration(text: str) -> int:
    """Gives the seconds of a window such as 7d, 12h, 30m or 2w; raises UsageError otherwise."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) <= 0:
        raise UsageError(f"--since {text!r} is not a window", "write a number and a unit: 30m, 12h, 7d or 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def options_for(request: CheckRequest) -> CheckOptions:
    """Gives validated CheckOptions; raises UsageError on a bad value."""
    if not 0 <= request.sample <= 1000:
        raise UsageError(f"--sample {request.sample} is out of range", "use 0 to 1000 keys")
    if not 1 <= request.budget_days <= 3650:
        raise UsageError(f"--budget-days {request.budget_days} is out of range", "use 1 to 3650 days")
    if request.statement_timeout_ms < 0:
        raise UsageError("--statement-timeout cannot be negative")
    since = parse_duration(request.since) if request.since else None
    return CheckOptions(sample=request.sample, since_seconds=since, budget_days=request.budget_days,
                        day_boundary=check_boundary(request.day_boundary), physical=request.physical)


def _tables(cur: Any) -> tuple[TableStats, ...]:
    cur.execute(
        """SELECT relname, n_live_tup, n_dead_tup, last_vacuum, last_autovacuum
             FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname"""
    )
    return tuple(TableStats(*row) for row in cur.fetchall())


def _database_info(cur: Any, db: Database, schema: Schema) -> DatabaseInfo:
    cur.execute("SELECT current_database(), current_setting('server_version'), current_user")
    name, version, user = cur.fetchone()
    revision = None
    if schema.has("alembic_version"):
        cur.execute("SELECT version_num FROM alembic_version LIMIT 1")
        row = cur.fetchone()
        revision = row[0] if row else None
    return DatabaseInfo(db.display, name, str(version).split()[0], user, revision)


class Snapshot:
    """The check's one READ ONLY, REPEATABLE READ transaction on its own connection.

    On a hot standby replay may cancel it (a recovery conflict); `reopen` then gives a cursor in a new
    snapshot on a new connection, with the rules' limits, and the engine carries on with that.
    """

    def __init__(self, db: Database, request: CheckRequest) -> None:
        self.db, self.request = db, request
        self.opened = 0
        self._stack = ExitStack()
        self._conn: psycopg.Connection[Any] | None = None

    def open(self, statement_timeout_ms: int) -> psycopg.Cursor[Any]:
        """Gives a cursor in a new snapshot; the previous one, if any, is abandoned (closed, never committed)."""
        self.close()
        self._conn = self._stack.enter_context(connect(self.db))
        cur = self._stack.enter_context(transaction(self._conn, read_only=True, repeatable_read=True,
                                                    statement_timeout_ms=statement_timeout_ms,
                                                    lock_timeout_ms=self.request.lock_timeout_ms))
        self.opened += 1
        return cur

    def reopen(self) -> psycopg.Cursor[Any]:
        return self.open(self.request.statement_timeout_ms)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # a read-only transaction: nothing to commit; the exits below are then no-ops
        self._stack.close()
        self._conn = None


def run_check(db: Database, request: CheckRequest) -> Report:
    """Gives the Report of the chosen rules, read in one READ ONLY, REPEATABLE READ snapshot.

    On a standby a recovery conflict may cost the snapshot: the cancelled pass is retried in a new one
    (see rules.engine); the report's options then say how many snapshots were read. A session lost for
    another reason (a restart, a terminated backend) is one clear error.
    """
    from . import custom_rules

    project = request.project
    rules = project.select(request.select, request.ignore)
    options = options_for(request)
    started = datetime.now(UTC)
    snapshot = Snapshot(db, request)
    try:
        cur = snapshot.open(60_000)
        schema = load_schema(cur)
        if not any(schema.has(t) for t in ("users", "transactions", "daily_plan")):
            raise DatabaseStateError(
                f"database {db.dbname!r} has none of the MITA tables (users, transactions, daily_plan)",
                "check the database name in the URL, or create the schema: mita-integrity migrate upgrade",
            )
        custom_rules.validate_sql(cur, schema, rules)  # a bad team rule stops the check before any rule runs
        info = _database_info(cur, db, schema)
        tables = _tables(cur)
        # The rules' own limit: a rule that hits it becomes an `error` result, the others still run.
        cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
            sql.Literal(f"{request.statement_timeout_ms}ms")))
        results = engine.run(CheckContext(cur, schema, options), rules, reopen=snapshot.reopen,
                             extra=project.families())
        results = project.finish(results, project.excluded_rules(request.select, request.ignore))
    except psycopg.Error as exc:
        if engine.recovery_conflict(exc) or is_connection_lost(exc):
            raise connection_lost(exc, "check", "nothing was changed (a check only reads)") from None
        raise
    finally:
        snapshot.close()
    report_options = {"since": request.since, "budget_days": request.budget_days,
                      "day_boundary": request.day_boundary, "sample": request.sample,
                      "select": list(request.select), "ignore": list(request.ignore), **request.extra}
    if snapshot.opened > 1:
        report_options["snapshots"] = snapshot.opened
    return Report(run_id=str(uuid.uuid4()), started_at=started, finished_at=datetime.now(UTC), database=info,
                  tables=tables, results=tuple(results), tool_version=__version__, options=report_options)


def exit_code(report: Report, fail_on: str = "high") -> int:
    """Gives 0 when nothing fails at or above fail_on, 2 for a critical finding, else 1."""
    if fail_on not in FAIL_ON:
        raise UsageError(f"--fail-on {fail_on} is not a severity", f"use one of {', '.join(FAIL_ON)}")
    if fail_on == "never":
        return 0
    threshold = Severity(fail_on).rank
    worst = report.worst()
    if worst is None or worst.rank > threshold:
        return 0
    return 2 if worst is Severity.CRITICAL else 1
