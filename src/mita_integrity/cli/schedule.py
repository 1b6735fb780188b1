"""`schedule`: the check on a cron schedule, recorded and alerted; `--once` runs one now."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .app import App, err, note


@click.command("schedule")
@click.option("--cron", default="0 2 * * *", show_default=True, metavar="EXPR",
              help="When to run: five cron fields (minute hour day month weekday).")
@click.option("--once", is_flag=True, help="Run one check now (recorded and alerted), then exit.")
@click.option("--timezone", default="UTC", show_default=True, help="The time zone the cron expression is read in.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The project file (as the global --config): its [check] settings, rules and [alerts] table "
                   "(the MITA_* environment variables win over it).")
@click.option("--select", multiple=True, metavar="CODES", help="Only these rules.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Leave these rules out.")
@click.option("--fail-on", type=click.Choice(["critical", "high", "medium", "low", "never"]), default="high",
              show_default=True, help="With --once: the lowest severity that makes the exit code non-zero.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Serve the last run's Prometheus metrics on http://0.0.0.0:PORT/metrics while running.")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the metrics to FILE after each run (node_exporter's textfile collector).")
@click.option("--html-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write each run's HTML report (with trends) into DIR.")
@click.option("--retention-days", type=click.IntRange(1, 36500), default=90, show_default=True,
              help="Recorded check runs older than this are deleted.")
@click.option("--incremental", is_flag=True,
              help="Each run re-reads only what changed since the last recorded check (check --incremental).")
@click.option("--full-every", default="7d", show_default=True, metavar="AGE",
              help="With --incremental: a full check at least this often (12h, 7d, 2w…).")
@click.option("--runs", type=click.IntRange(1), hidden=True, help="Stop after this many scheduled runs (tests).")
@click.pass_obj
def schedule_command(app: App, cron: str, once: bool, timezone: str, config_path: Path | None,
                     select: tuple[str, ...], ignore: tuple[str, ...], fail_on: str, metrics_port: int | None,
                     metrics_file: Path | None, html_dir: Path | None, retention_days: int,
                     incremental: bool, full_every: str, runs: int | None) -> int:
    """Run the check on a schedule (default 02:00 daily): record it, alert on what changed, export metrics."""
    from ..check.custom_rules import validate_in_database
    from ..check.run import CheckRequest, exit_code, options_for, parse_duration
    from ..database.errors import UsageError
    from ..schedule.runner import (
        MetricsExporter,
        ScheduleRequest,
        Stopper,
        attempt,
        deliver_pending,
        describe,
        parse_cron,
        parse_zone,
        preflight,
        serve,
    )
    from .config import alert_config, settled

    # Every bad value is an error now, not at 02:00.
    parse_cron(cron)
    parse_zone(timezone)
    check = settled(app, CheckRequest(select=select, ignore=ignore), config_path)
    options_for(check)
    alerts = alert_config(check.project)
    if metrics_file is not None and not os.access(metrics_file.expanduser().resolve().parent, os.W_OK):
        raise UsageError(f"cannot write {metrics_file}: the folder is missing or not writable")
    request = ScheduleRequest(cron=cron, timezone=timezone, check=check, alerts=alerts if alerts.channels else None,
                              retention_days=retention_days,
                              html_dir=html_dir, incremental=incremental,
                              full_every_s=parse_duration(full_every, "--full-every"))
    db = app.database()
    validate_in_database(db, check.project.select(check.select, check.ignore))  # the team's SQL, now, not at 02:00
    note(f"alerts: {', '.join(alerts.channels) or 'none configured'}")
    try:
        metrics = MetricsExporter(metrics_port, metrics_file) if (metrics_port or metrics_file) else None
    except OSError as exc:
        raise UsageError(f"--metrics-port {metrics_port}: {exc.strerror}") from None
    try:
        if once:
            from datetime import UTC, datetime

            run = attempt(db, request, datetime.now(UTC), metrics=metrics, per_slot=False)
            if run.error is not None:  # the one-line error and exit 3, once the failure was alerted
                for d in run.deliveries:
                    note(f"the failure was alerted: {d.describe()}")
                raise run.error
            click.echo(describe(run))
            for d in run.deliveries:
                if not d.ok:
                    err(f"warning: alert channel {d.channel} failed: {d.error}")
            return exit_code(run.report, fail_on) if run.report else 0
        stopper = Stopper()
        stopper.install()  # first: a SIGTERM while it starts is a graceful stop too
        warning = preflight(db)  # a refused configuration stops here; an unreachable server does not
        if warning:
            err(warning)
        else:
            pending = deliver_pending(db, request)  # what a killed predecessor did not get to tell
            if pending:
                (err if pending.startswith("warning") else click.echo)(pending)
        note(f"scheduling the check at '{cron}' ({timezone}); stop with SIGTERM or Ctrl-C; a failed run is "
             "logged, counted and alerted, and the schedule goes on")
        serve(db, request, click.echo, stopper, metrics, runs)
        return 0
    finally:
        if metrics is not None:
            metrics.close()
