"""`check`: the catalogue run in one read-only snapshot, as a Report value, plus the exit code it implies."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .. import __version__
from ..database.connection import Database
from ..database.errors import DatabaseStateError, UsageError, connection_lost, is_connection_lost
from ..database.own_version import readable_own_revision
from ..findings import DatabaseInfo, Report, Severity, Status, TableStats
from . import engine, incremental
from .rules.context import CheckContext, CheckOptions, Schema, load_schema
from .rules.dayboundary import check_boundary
from .snapshot import Snapshot

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
    no_guarantees: bool = False  # scan every rule, even where a constraint claims to rule its violations out
    parallel: bool = True  # a second connection in the same snapshot where the server allows it
    statement_timeout_ms: int = 300_000
    lock_timeout_ms: int = 5_000
    extra: dict[str, Any] = field(default_factory=dict)
    incremental: bool = False  # start from the last recorded check and read only what changed (incremental/)
    keep_base: bool = False  # the run will be recorded: keep what the next incremental check needs
    max_base_age_s: int = 7 * 86400  # --max-base-age: an older base means a full run
    full_reason: str | None = None  # with incremental: run in full for this reason (schedule's --full-every)
    project: Project = field(default_factory=_no_project)  # the project file's rules and settings


MAX_SINCE_SECONDS = 36500 * 86400


def parse_duration(text: str, flag: str = "--since") -> int:
    """Gives the seconds of a window such as 7d, 12h, 30m or 2w; raises UsageError otherwise."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r} is not a window", "write a number and a unit: 30m, 12h, 7d or 2w")
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
    if since is not None and since > MAX_SINCE_SECONDS:  # now() minus more than that leaves the timestamp range
        raise UsageError(f"--since {request.since!r} is out of range", "use at most 100 years (36500d)")
    return CheckOptions(sample=request.sample, since_seconds=since, budget_days=request.budget_days,
                        day_boundary=check_boundary(request.day_boundary), physical=request.physical,
                        no_guarantees=request.no_guarantees)


def _tables(cur: Any) -> tuple[TableStats, ...]:
    cur.execute(
        """SELECT relname, n_live_tup, n_dead_tup, last_vacuum, last_autovacuum
             FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname"""
    )
    return tuple(TableStats(*row) for row in cur.fetchall())


def _database_info(cur: Any, db: Database, schema: Schema) -> DatabaseInfo:
    cur.execute("SELECT current_database(), current_setting('server_version'), current_user")
    name, version, user = cur.fetchone()
    # The chain's revision: the tool's own table when it runs standalone, else the application's (an exported
    # chain, or the baseline an adopting upgrade starts from). Hints and verify read where the chain stands.
    revision = readable_own_revision(cur)
    if revision is None and schema.has("alembic_version"):
        cur.execute("SELECT version_num FROM public.alembic_version LIMIT 1")
        row = cur.fetchone()
        revision = row[0] if row else None
    return DatabaseInfo(db.display, name, str(version).split()[0], user, revision)


def run_check(db: Database, request: CheckRequest) -> Report:
    """Gives the Report of the chosen rules, read in one READ ONLY, REPEATABLE READ snapshot.

    On a standby a recovery conflict may cost the snapshot: the check's own first reads (_set_up) and a
    cancelled pass (see engine) are retried in a new one; the report's options then say how many snapshots
    the rules read. A session lost for another reason (a restart, a terminated backend) is one clear error.
    """
    project = request.project
    rules = project.select(request.select, request.ignore)
    options = options_for(request)
    started = datetime.now(UTC)
    snapshot = Snapshot(db, request.statement_timeout_ms, request.lock_timeout_ms)
    try:
        cur, second, connections, schema, info, tables, sizes = _set_up(snapshot, db, request, rules)
        ctx = CheckContext(cur, schema, options)
        helpers = [CheckContext(second, schema, options, connection=2)] if second is not None else []
        families = project.families()

        def run_rules(chosen: Sequence[Any]) -> list[Any]:
            return engine.run(ctx, chosen, reopen=snapshot.reopen, helpers=helpers, sizes=sizes, extra=families)

        kept = None
        how = incremental.Outcome_()
        if request.incremental or (request.keep_base and not request.since):
            results, how, kept = incremental.run(
                ctx, rules, run_rules, _decisive_options(request), incremental=request.incremental,
                keep=request.keep_base and not request.since, max_base_age_s=request.max_base_age_s,
                extra=families, since=bool(request.since), full_reason=request.full_reason, helpers=helpers,
                sizes=sizes)
            if snapshot.opened > 1:  # a standby's replay cost the snapshot: no one snapshot to start from
                kept = None
            if request.incremental:
                results = incremental.annotate(results, how)
        else:
            results = run_rules(rules)
        results = project.finish(results, project.excluded_rules(request.select, request.ignore))
    except psycopg.Error as exc:
        if engine.recovery_conflict(exc, snapshot.last_connection):  # in reads of the check's own, not retried
            raise engine.stopped_by(exc, None) from None
        if is_connection_lost(exc):
            raise connection_lost(exc, "check", "nothing was changed (a check only reads)") from None
        raise
    finally:
        snapshot.close()
    report_options = _report_options(request)
    if request.incremental:
        report_options["mode"] = how.mode
        if how.base_run:
            report_options["base_run"] = how.base_run
    if request.no_guarantees:
        report_options["no_guarantees"] = True
    if snapshot.opened > 1:
        report_options["snapshots"] = snapshot.opened
    report_options["connections"] = connections
    return Report(run_id=str(uuid.uuid4()), started_at=started, finished_at=datetime.now(UTC), database=info,
                  tables=tables, results=tuple(results), tool_version=__version__, options=report_options,
                  passes=tuple(ctx.passes), mode=how.mode, base_run=how.base_run, kept=kept)


def _set_up(snapshot: Snapshot, db: Database, request: CheckRequest, rules: Sequence[Any]) -> tuple[Any, ...]:
    """Opens the snapshot and reads what every rule needs first: the schema, the database's facts, the tables'
    sizes, and the second connection where there can be one. A standby's replay may cancel these reads or end
    the session (a recovery conflict) before any rule ran: they are read again in a new snapshot, up to
    engine.RETRIES more times, and the report counts the snapshots from the one these reads came from."""
    from . import custom_rules

    cause: psycopg.Error | None = None
    for attempt in range(engine.RETRIES + 1):
        try:
            cur = snapshot.open(60_000) if cause is None else snapshot.reopen(cause, 60_000)
            opened = snapshot.opened
            schema = load_schema(cur)
            if not any(schema.has(t) for t in ("users", "transactions", "daily_plan")):
                raise DatabaseStateError(
                    f"database {db.dbname!r} has none of the MITA tables (users, transactions, daily_plan)",
                    "check the database name in the URL, or create the schema: mita-integrity migrate upgrade",
                )
            custom_rules.validate_sql(cur, schema, rules)  # a bad team rule stops the check before any rule runs
            info = _database_info(cur, db, schema)
            tables = _tables(cur)
            sizes = _sizes(cur)
            # Before the rules' limit below: these few statements are the check's own, not a rule's.
            if request.parallel:
                cur, second, connections = snapshot.share(cur)  # it may open a new snapshot: counted
            else:
                second, connections = None, "one connection: asked for"
            # The rules' own limit: a rule that hits it becomes an `error` result, the others still run. (The
            # second connection has set it already.)
            cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(f"{request.statement_timeout_ms}ms")))
        except psycopg.Error as exc:
            if not engine.recovery_conflict(exc, snapshot.last_connection):
                raise
            if attempt == engine.RETRIES:
                raise engine.stopped_by(exc, 1 + engine.RETRIES) from None
            engine.pause_before_retry(attempt)
            cause = exc
            continue
        snapshot.opened -= opened - 1  # the snapshots replay cancelled before these reads were read by none
        return cur, second, connections, schema, info, tables, sizes
    raise AssertionError("unreachable")


def _report_options(request: CheckRequest) -> dict[str, Any]:
    options = {"since": request.since, "budget_days": request.budget_days, "day_boundary": request.day_boundary,
               "sample": request.sample, "select": list(request.select), "ignore": list(request.ignore),
               **request.extra}
    return options


def _decisive_options(request: CheckRequest) -> dict[str, Any]:
    """Gives what decides the results: a base for --incremental must have been run with the very same."""
    return {**_report_options(request), "no_guarantees": request.no_guarantees, "physical": request.physical,
            "exclude_tables": sorted(request.project.value("exclude_tables"))}


def _sizes(cur: Any) -> dict[str, float]:
    """Gives each table's estimated rows (pg_class.reltuples): the planner's own guess orders the passes."""
    cur.execute("""SELECT c.relname, greatest(c.reltuples, 0) FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')""")
    return {name: float(rows) for name, rows in cur.fetchall()}


def exit_code(report: Report, fail_on: str = "high") -> int:
    """Gives 3 when a rule ended in `error` (a blind spot is never read as clean), else 0 when nothing fails
    at or above fail_on, 2 for a critical finding, else 1."""
    if fail_on not in FAIL_ON:
        raise UsageError(f"--fail-on {fail_on} is not a severity", f"use one of {', '.join(FAIL_ON)}")
    if any(r.status is Status.ERROR for r in report.results):
        return 3
    if fail_on == "never":
        return 0
    threshold = Severity(fail_on).rank
    worst = report.worst()
    if worst is None or worst.rank > threshold:
        return 0
    return 2 if worst is Severity.CRITICAL else 1
