"""`check`, `rules` and `sql`: the diagnostic half."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..database.errors import UsageError
from ..findings import Report
from .app import App, console, err, note

if TYPE_CHECKING:
    from ..runs.findings_history import Delta, Trend

FORMATS = ("text", "json", "html", "junit", "prometheus")
TREND_RUNS = 30  # the recorded check runs the HTML report charts (this run included)


PG_TIMEOUT_MAX_MS = 2_147_483_647  # statement_timeout / lock_timeout are int milliseconds


def _duration_ms(text: str, option: str) -> int:
    from ..check.run import parse_duration

    text = text.strip()
    if text.isdigit():
        ms = int(text) * 1000
    elif text.endswith("ms") and text[:-2].strip().isdigit():
        ms = int(text[:-2])
    else:
        try:
            ms = parse_duration(text) * 1000
        except UsageError:
            raise UsageError(f"{option} {text!r} is not a duration", "write seconds (300) or 30s, 5m, 1h") from None
    if ms > PG_TIMEOUT_MAX_MS:  # the server refuses a longer timeout: say so before connecting, not after
        raise UsageError(f"{option} {text!r} is longer than PostgreSQL accepts",
                         "at most 2147483647 ms (about 24 days)")
    return ms


def output_targets(report_formats: tuple[str, ...], given: str | Path | None) -> dict[str, Path | None]:
    """Gives where each format goes: None for stdout; a file; or a file per format inside a folder.

    Raises UsageError, before any work, when a report could not be written there: a missing folder, one
    we may not write in, a device that refuses writes (/dev/full), a disk with no space left.
    """
    if given is None:
        return dict.fromkeys(report_formats)
    output = Path(given).expanduser()
    if str(given).endswith(("/", os.sep)) and not output.exists() and output.parent.is_dir():
        try:  # "reports/": a folder is meant; make it (its parent must exist)
            output.mkdir()
        except OSError as exc:
            raise _cannot(output, f"the folder could not be made ({exc.strerror})") from None
    if output.is_dir():
        _probe_folder(output)
        return {fmt: output for fmt in report_formats}
    if len(report_formats) > 1:
        raise UsageError(f"--output {output} must be an existing folder when several --format are given")
    _probe_file(output)
    return {report_formats[0]: output}


def _cannot(path: Path, why: str) -> UsageError:
    return UsageError(f"cannot write the report to {path}: {why}; nothing was run",
                      "choose another --output, or leave it out to print the report")


def _probe_folder(folder: Path) -> None:
    """Creates and removes a file in folder: the one test that sees permissions, ACLs and read-only mounts."""
    try:
        fd, name = tempfile.mkstemp(prefix=".mita-integrity-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise _cannot(folder, f"the folder is not writable ({exc.strerror})") from None
    _require_space(folder)


def _probe_file(path: Path) -> None:
    """Opens path for writing without changing it (or creates and removes it); a full device fails here."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise _cannot(path, f"{parent} is not a folder" if parent.exists() else f"the folder {parent} does not exist")
    try:
        if path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # no truncation: the report replaces it only at the end
            try:
                os.write(fd, b"")  # a device that refuses every write (/dev/full) refuses this one too
            finally:
                os.close(fd)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            os.unlink(path)
    except OSError as exc:
        raise _cannot(path, exc.strerror or type(exc).__name__) from None
    if not path.exists() or path.is_file():
        _require_space(parent)


def _require_space(folder: Path) -> None:
    stats = os.statvfs(folder)
    if stats.f_bavail == 0:
        raise _cannot(folder, "no space left on its disk")


def write_reports(report: Report, targets: dict[str, Path | None], *, color: bool,
                  trend: Trend | None = None) -> list[Path]:
    """Renders the report in every asked format; gives the files written (stdout gets the rest).

    `trend`, the history of recorded checks, goes into the HTML (its charts and what is new since the last run).
    """
    from .. import report as reports

    written = []
    for fmt, target in targets.items():
        if target is None:
            text = reports.render(report, fmt, color=color and fmt == "text", trend=trend)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            continue
        path = target / reports.file_name(report, fmt) if target.is_dir() else target
        try:
            path.write_text(reports.render(report, fmt, trend=trend))
        except OSError as exc:
            raise UsageError(f"cannot write the report to {path}: {exc.strerror}") from None
        written.append(path)
    return written


@click.command("check")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMATS), help="Report format (repeatable).")
@click.option("--output", type=click.Path(), metavar="PATH",
              help="Write the report(s) to PATH: a file, or a folder (an existing one, or PATH/) that receives one "
                   "file per format.")
@click.option("--select", multiple=True, metavar="CODES", help="Only these rules: codes, prefixes (REF) or names.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Leave these rules out.")
@click.option("--fail-on", type=click.Choice(["critical", "high", "medium", "low", "never"]), default="high",
              show_default=True, help="Lowest severity that makes the exit code non-zero.")
@click.option("--since", metavar="WINDOW", help="Only rows created in this window, e.g. 7d, 12h (section 13).")
@click.option("--sample", type=int, default=10, show_default=True, help="Primary keys to show per finding.")
@click.option("--budget-days", type=int, default=30, show_default=True, help="BUD001's window in days.")
@click.option("--day-boundary", type=click.Choice(["utc", "user-timezone"]), default="utc", show_default=True,
              help="The day a transaction belongs to.")
@click.option("--physical", is_flag=True, help="Also verify B-tree indexes with amcheck (PHY001).")
@click.option("--no-guarantees", is_flag=True,
              help="Scan every rule even where a constraint claims to rule its violations out (rows written with "
                   "triggers disabled or as a replica bypass constraints).")
@click.option("--statement-timeout", default="300", show_default=True, metavar="SECONDS",
              help="Cancel any one rule's query after this long (300, 5m, 500ms…).")
@click.option("--lock-timeout", default="5", show_default=True, metavar="SECONDS",
              help="Give up waiting for a lock after this long.")
@click.option("--record", is_flag=True,
              help="Store the run in integrity.runs (created if absent) for `runs` and `verify`.")
@click.option("--incremental", is_flag=True,
              help="Start from the last recorded check (same rules and options) and read only what changed since; "
                   "results identical to a full check, or the rule runs in full (the report says which and why).")
@click.option("--max-base-age", default="7d", show_default=True, metavar="AGE",
              help="--incremental: a recorded base older than this means a full run (12h, 7d, 2w…).")
@click.option("--alert", is_flag=True,
              help="Record the run and alert on new, worsened and resolved findings (MITA_* variables, --config).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The project file (as the global --config): its [alerts] table is where --alert sends.")
@click.pass_obj
def check_command(app: App, formats: tuple[str, ...], output: str | None, select: tuple[str, ...],
                  ignore: tuple[str, ...], fail_on: str, since: str | None, sample: int, budget_days: int,
                  day_boundary: str, physical: bool, no_guarantees: bool, statement_timeout: str, lock_timeout: str,
                  record: bool, incremental: bool, max_base_age: str, alert: bool,
                  config_path: Path | None) -> int:
    """Run the rule catalogue read-only and report; the exit code follows --fail-on (3 when a rule errs)."""
    from ..check.run import CheckRequest, exit_code, options_for, parse_duration, run_check
    from .config import settled

    request = CheckRequest(
        select=select, ignore=ignore, sample=sample, since=since, budget_days=budget_days,
        day_boundary=day_boundary, physical=physical, no_guarantees=no_guarantees,
        statement_timeout_ms=_duration_ms(statement_timeout, "--statement-timeout"),
        lock_timeout_ms=_duration_ms(lock_timeout, "--lock-timeout"),
        incremental=incremental, keep_base=record or alert,
        max_base_age_s=parse_duration(max_base_age, "--max-base-age"),
    )
    request = settled(app, request, config_path)  # the project file's settings under the typed flags
    options_for(request)  # every bad value is reported before connecting
    if not request.project.select(request.select, request.ignore):
        raise UsageError("--select and --ignore leave no rule to run", "ignore fewer rules")
    report_formats = tuple(dict.fromkeys(formats or ("text",)))
    targets = output_targets(report_formats, output)
    alerts = _alert_config(request.project) if alert else None
    record = record or alert
    if record:
        _may_record(app)
    report = run_check(app.database(), request)
    if app.debug:
        note(f"check: {report.options.get('connections', 'one connection')}")
        for p in report.passes:
            note(f"check: pass {p.name} ({', '.join(p.tables) or '-'}) {p.duration_ms} ms on connection {p.connection}")
    trend = _history(app) if record and "html" in targets else None
    written = write_reports(report, targets, color=sys.stdout.isatty(), trend=trend)
    if written and "text" not in [f for f, t in targets.items() if t is None]:
        from .. import report as reports

        sys.stdout.write(reports.render(report, "text", color=sys.stdout.isatty()))
    for path in written:
        note(f"report written to {path}")
    if record:
        delta = _record(app, report)
        note(f"check run {delta.run_id} recorded in integrity.runs: {len(delta.new)} new, "
             f"{len(delta.worsened)} worsened, {len(delta.resolved)} resolved")
        if alerts is not None:
            _alert(app, alerts, delta, report)
    return exit_code(report, fail_on)


def _alert_config(project: Any) -> Any:
    from .config import alert_config

    config = alert_config(project)
    if not config.channels:
        raise UsageError("--alert: no alert channel is configured",
                         "set MITA_SLACK_WEBHOOK_URL, MITA_SMTP_URL, SENTRY_DSN or MITA_ALERT_WEBHOOK_URL")
    return config


def _alert(app: App, config: Any, delta: Any, report: Report) -> None:
    """Delivers what is due to each channel (outbox: at least once); a failed channel is a warning, never the
    exit code."""
    from ..alerts import deliver_due
    from ..schedule.runner import note_deliveries

    deliveries = deliver_due(app.database(), config, report, database=app.database().display)
    note_deliveries(app.database(), report.run_id, deliveries)
    for d in deliveries:
        if d.ok:
            note(f"alert sent by {d.channel}")
        else:
            err(f"warning: alert channel {d.channel} failed: {d.error}")
    if not deliveries:
        note("no alert due: nothing new, worse or resolved")


def _may_record(app: App) -> None:
    """Refuses --record up front, in one line, when the role could not store the run."""
    from ..database.connection import connect, transaction
    from ..runs import store

    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        store.check_record_privileges(cur)


def _history(app: App) -> Trend | None:
    """Reads the recorded checks so far (read-only); the HTML adds this run to them as the newest.

    A history that cannot be read costs the report its trends, not the check its result.
    """
    import psycopg

    from ..database.connection import connect, transaction
    from ..runs.findings_history import trend

    try:
        with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
            return trend(cur, TREND_RUNS - 1)
    except psycopg.errors.InsufficientPrivilege as exc:
        note(f"the HTML report has no trends: the run history could not be read ({exc.diag.message_primary})")
        return None


def _record(app: App, report: Report) -> Delta:
    """Stores the finished run (its own short transaction, after the read-only check); gives what changed."""
    import psycopg

    from ..database.connection import connect
    from ..database.errors import DatabaseStateError
    from ..runs.findings_history import record

    try:
        with connect(app.database()) as conn:
            return record(conn, report)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseStateError(f"the check ran but could not be recorded: {exc.diag.message_primary}",
                                 "run it as the role that owns the MITA tables, or grant INSERT on "
                                 "integrity.runs") from None


@click.command("rules")
@click.argument("code", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def rules_command(app: App, code: str | None, fmt: str) -> int:
    """List the rule catalogue, or explain one rule (what it finds, why, example, repair)."""
    from ..check.custom_rules import explain, listing, rule_json

    project = app.project()  # the team's own rules are listed and explained with the built-ins
    if code is None:
        if fmt == "json":
            console.print_json(json.dumps([rule_json(r) for r in project.all_rules()]))
        else:
            console.print(listing(project.all_rules()), markup=False)
        return 0
    rule = project.rule(code)
    if fmt == "json":
        console.print_json(json.dumps(rule_json(rule)))
    else:
        console.print(explain(rule), markup=False)
    return 0


@click.command("sql")
@click.option("--conninfo", is_flag=True,
              help="Print the database's libpq connection string instead, for psql and pg_dump: "
                   'psql "$(mita-integrity sql --conninfo)". The password is left in only when the output is '
                   "not a terminal.")
@click.pass_obj
def sql_command(app: App, conninfo: bool) -> int:
    """Print the psql diagnostics script generated from the catalogue (and the project file's rules)."""
    if conninfo:
        from ..database.urls import conninfo as libpq_conninfo

        params = app.database().parsed.params
        sys.stdout.write(libpq_conninfo(params, mask_password=sys.stdout.isatty()) + "\n")
        return 0
    from ..check.sqlscript import generate

    sys.stdout.write(generate(app.project().custom))
    return 0
