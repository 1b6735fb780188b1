"""`fix`, `undo` and `runs`: the repairing half, and its history."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import UsageError
from .app import App, console, note
from .checks import _duration_ms


@contextmanager
def _bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[str, int], None] | None]:
    if not enabled:
        yield None
        return
    progress = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), transient=True, console=Console(stderr=True))
    task = progress.add_task(description, total=max(total, 1))
    with progress:
        def advance(label: str, done: int) -> None:
            progress.update(task, description=label, advance=done)
        yield advance


def render_plan(plan: Any, *, show_sql: bool) -> None:
    """Prints the plan: the repairs that will run (rows, safety, action, SQL), then what is left and why."""
    if not plan.items:
        console.print("Nothing to repair: every chosen rule passes.", markup=False)
        return
    console.print("Repair plan (dry run: nothing changed)" if plan.to_apply
                  else "No safe repair to run (dry run: nothing changed).", markup=False)
    table = Table()
    for name, justify in (("rule", "left"), ("table", "left"), ("rows", "right"), ("safety", "left"),
                          ("what fix --apply does", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for item in plan.to_apply:
        unit = "" if item.result.unit == "row" else f" {item.result.unit}s"
        table.add_row(item.code, item.table, f"{item.rows:,}{unit}", item.safety.value, item.action)
    if plan.to_apply:
        console.print(table)
    if show_sql:
        for item in plan.to_apply:
            console.print(f"\n-- {item.code} on {item.table}: the candidates, then the statements of each batch",
                          markup=False)
            console.print(";\n".join(s.strip() for s in item.sql) + ";", markup=False, soft_wrap=True)
    left = [i for i in plan.items if not i.will_apply]
    for reason in ("needs --unsafe", "left to the migrations (0022-0026)", "informational", "needs a person"):
        group = [i for i in left if _why_left(i) == reason]
        if group:
            listed = ", ".join(f"{i.code} {i.table} ({i.rows:,})" for i in group)
            console.print(f"\n{reason.capitalize()} ({len(group)}): {listed}", markup=False)
    if 0 < len(left) <= 10:
        for item in left:
            evidence = ", ".join(item.result.sample[:5]) or "-"
            console.print(f"  {item.code} {item.table}: {item.action} Evidence: {evidence}", markup=False)
    console.print(f"\n{plan.rows_to_change:,} rows to change in {len(plan.to_apply)} rules; {len(left)} findings "
                  "need --unsafe or a person (`mita-integrity rules CODE` explains one). "
                  "Apply with: mita-integrity fix --apply", markup=False)


def _why_left(item: Any) -> str:
    if item.blocked_by == "needs --unsafe":
        return item.blocked_by
    if item.code.startswith("SCH"):
        return "left to the migrations (0022-0026)"
    return "informational" if item.result.severity.value == "info" else "needs a person"


def render_outcome(outcome: Any) -> None:
    table = Table(title=f"Fix run {outcome.run_id} ({outcome.status}, {outcome.seconds:.1f} s)", title_justify="left")
    for name in ("rule", "table", "before", "changed", "archived", "skipped", "after"):
        table.add_column(name, justify="left" if name in ("rule", "table") else "right")
    for i in outcome.items:
        after = "?" if i.after is None else f"{i.after:,}"
        table.add_row(i.item.code, i.item.table, f"{i.item.rows:,}", f"{i.done.changed:,}", f"{i.done.archived:,}",
                      f"{i.done.skipped:,}", after)
    console.print(table)
    for i in outcome.items:
        for line in i.done.notes:
            console.print(f"{i.item.code}: {line}", markup=False)
    console.print(f"{outcome.changed:,} rows changed, {outcome.archived:,} archived in integrity.archive. "
                  f"Undo with: mita-integrity undo {outcome.run_id}", markup=False)


@click.command("fix")
@click.option("--apply", "do_apply", is_flag=True,
              help="Execute the repairs (default: a dry run that changes nothing).")
@click.option("--unsafe", is_flag=True, help="Also apply repairs that are guesses (safety: unsafe).")
@click.option("--select", multiple=True, metavar="CODES", help="Only these rules: codes, prefixes (REF) or names.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Leave these rules out.")
@click.option("--batch-size", type=int, default=5000, show_default=True, help="Rows (or keys) per transaction.")
@click.option("--max-rows", type=int, metavar="N", help="Refuse a plan that would change more than N rows.")
@click.option("--budget-days", type=int, default=30, show_default=True, help="BUD001's window in days.")
@click.option("--day-boundary", type=click.Choice(["utc", "user-timezone"]), default="utc", show_default=True)
@click.option("--lock-timeout", default="2", show_default=True, metavar="SECONDS",
              help="A batch gives up waiting for a lock after this long (then retries, then leaves it).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-sql", is_flag=True, help="Dry run: do not print the SQL.")
@click.pass_obj
def fix_command(app: App, do_apply: bool, unsafe: bool, select: tuple[str, ...], ignore: tuple[str, ...],
                batch_size: int, max_rows: int | None, budget_days: int, day_boundary: str, lock_timeout: str,
                fmt: str, no_sql: bool) -> int:
    """Plan repairs of the failing rules (dry run), or --apply them with archive, in batches."""
    from ..fix import FixRequest, plan_fix, validate
    from ..fix_apply import apply_fix

    request = FixRequest(select=select, ignore=ignore, unsafe=unsafe, batch_size=batch_size, max_rows=max_rows,
                         budget_days=budget_days, day_boundary=day_boundary,
                         lock_timeout_ms=_duration_ms(lock_timeout, "--lock-timeout"))
    validate(request)
    plan = plan_fix(app.database(), request)
    if not do_apply:
        if fmt == "json":
            console.print_json(json.dumps(plan.to_json()))
        else:
            render_plan(plan, show_sql=not no_sql)
        return 0
    if not plan.to_apply:
        note("nothing to apply: no failing rule has a repair that may run (see the dry run)")
        if fmt == "json":
            console.print_json(json.dumps({"run_id": None, "changed": 0, "rules": []}))
        return 0
    total = sum(i.result.groups or i.rows for i in plan.to_apply)
    with _bar(app.interactive and fmt == "text", "repairing", total) as advance:
        outcome = apply_fix(app.database(), plan, request,
                            (lambda item, n: advance(f"{item.code} {item.table}", n)) if advance else None)
    if fmt == "json":
        console.print_json(json.dumps({"run_id": outcome.run_id, "status": outcome.status, **outcome.summary()}))
    else:
        render_outcome(outcome)
    left = sum(1 for i in outcome.items if i.after)
    return 1 if left else 0


@click.command("undo")
@click.argument("run_id")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=5000, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def undo_command(app: App, run_id: str, batch_size: int, fmt: str) -> int:
    """Restore what fix run RUN_ID changed or removed; list what can no longer be restored."""
    from ..undo import undo_run

    db = app.database()
    with _bar(app.interactive and fmt == "text", "restoring", 0) as advance:
        outcome = undo_run(db, run_id, batch_size, (lambda n: advance("restoring", n)) if advance else None)
    if fmt == "json":
        console.print_json(json.dumps({"run_id": outcome.run_id, **outcome.summary()}))
        return 1 if outcome.conflicts else 0
    console.print(f"Undo run {outcome.run_id}: {outcome.restored:,} of {outcome.pending_before:,} archived rows of "
                  f"run {outcome.undone_run} restored in {outcome.seconds:.1f} s.", markup=False)
    for c in outcome.conflicts[:20]:
        console.print(f"  conflict: {c.table} {json.dumps(c.pk)} ({c.action}): {c.reason}", markup=False)
    if len(outcome.conflicts) > 20:
        console.print(f"  … and {len(outcome.conflicts) - 20:,} more (mita-integrity runs --format json)", markup=False)
    if outcome.conflicts:
        console.print(f"{len(outcome.conflicts):,} rows were not restored. Resolve them, then run undo again.",
                      markup=False)
    return 1 if outcome.conflicts else 0


@click.command("runs")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--kind", type=click.Choice(["check", "fix", "undo"]))
@click.option("--show", "show", metavar="RUN_ID",
              help="Print one run (a unique prefix of 8+ characters will do): a check's failing results, "
                   "a fix's or an undo's rules.")
@click.option("--html", "html", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="With --show of a check run: write its HTML report, with the trends up to that run, to FILE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def runs_command(app: App, limit: int, kind: str | None, show: str | None, html: Path | None, fmt: str) -> int:
    """The history of recorded runs: id, time, kind, status, summary; --show RUN_ID prints one."""
    from .. import store
    from ..connection import connect, transaction

    if html is not None and show is None:
        raise UsageError("--html needs --show RUN_ID (the check run whose report to write)",
                         "list the check runs with: mita-integrity runs --kind check")
    if show is not None:
        return _show_run(app, show, html, fmt)
    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        rows = store.list_runs(cur, limit, kind)
    if fmt == "json":
        console.print_json(json.dumps([r.to_json() for r in rows]))
        return 0
    if not rows:
        console.print("No runs recorded yet (fix --apply, undo and check --record record theirs).", markup=False)
        return 0
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("started (UTC)", no_wrap=True)
    for name in ("kind", "status", "summary"):
        table.add_column(name)
    for r in rows:
        table.add_row(r.id, r.started_at.strftime("%Y-%m-%d %H:%M:%S"), r.kind, r.status, store.describe(r))
    console.print(table)
    return 0


TREND_RUNS = 30  # the recorded check runs `runs --show RUN_ID --html` charts, that run the newest


def _show_run(app: App, run_id: str, html: Path | None, fmt: str) -> int:
    """Prints one run; for a check run with `html`, also writes its report with the trends up to it."""
    from .. import history, store
    from ..connection import connect, transaction
    from ..report import render
    from ..report.stored import load_report

    if html is not None:
        html = html.expanduser()
        parent = html.resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK) or (html.exists() and not os.access(html, os.W_OK)):
            raise UsageError(f"cannot write the HTML report to {html}: the folder is missing or not writable")
    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        run = store.get_run(cur, run_id)
        if html is not None and run.kind != "check":
            raise UsageError(f"run {run.id} is a {run.kind} run: only a check run has an HTML report",
                             "list the check runs with: mita-integrity runs --kind check")
        detail = _run_detail(cur, run)
        page = None
        if html is not None:  # the stored report, with the recorded checks up to (and including) this run
            page = render(load_report(cur, run.id), "html", trend=history.trend(cur, TREND_RUNS, until=run.id))
    if page is not None and html is not None:
        try:
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the HTML report to {html}: {exc.strerror}") from None
    if fmt == "json":
        console.print_json(json.dumps({"run": run.to_json(), **detail, "html": str(html) if html else None},
                                      default=str))
    else:
        _print_run(run, detail)
    if html is not None:
        note(f"HTML report of run {run.id} with the trends up to it written to {html}")
    return 0


def _run_detail(cur: Any, run: Any) -> dict[str, Any]:
    """Gives what `runs --show` says about a run beyond its row: failing results, or rules."""
    from .. import store

    if run.kind == "check":
        return _check_detail(cur, run)
    if run.kind == "fix":
        return {"rules": list(run.summary.get("rules", []))}
    cur.execute(f"SELECT rule_code, table_name, action, count(*) FROM {store.SCHEMA}.archive "
                "WHERE restored_by = %s::uuid GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", (run.id,))
    rules = [{"code": code, "table": table, "action": action, "restored": int(n)}
             for code, table, action, n in cur.fetchall()]
    return {"rules": rules, "conflicts": list(run.summary.get("conflicts", [])),
            "conflict_count": int(run.summary.get("conflict_count", 0))}


def _check_detail(cur: Any, run: Any) -> dict[str, Any]:
    """Gives a check run's failing results (integrity.run_results, else the stored report) and what changed."""
    from .. import history, store
    from ..findings import Severity
    from ..rules.catalogue import BY_CODE

    cur.execute(f"SELECT report FROM {store.SCHEMA}.runs WHERE id = %s::uuid", (run.id,))
    row = cur.fetchone()
    doc = (row[0] if row else None) or {}
    stored = {history.fingerprint(r["code"], r["table"]): r for r in doc.get("results", [])}
    cur.execute(f"SELECT code, table_name, severity, count FROM {store.SCHEMA}.run_results "
                "WHERE run_id = %s::uuid AND status = 'fail'", (run.id,))
    failing = [(code, table, severity, int(count)) for code, table, severity, count in cur.fetchall()]
    if not failing and not _has_results(cur, run.id):  # recorded before the history kept every result
        failing = [(r["code"], r["table"], r["severity"], int(r["count"])) for r in stored.values()
                   if r.get("status") == "fail"]
    recent = history.trend(cur, 2, until=run.id)
    previous_run = recent.runs[0][0] if len(recent.runs) == 2 and recent.runs[1][0] == run.id else None
    rank = {s.value: s.rank for s in Severity}
    results = []
    for code, table, severity, count in sorted(failing, key=lambda f: (rank.get(f[2], 9), -f[3], f[0], f[1])):
        fp = history.fingerprint(code, table)
        before = recent.counts.get(fp, (None, None))[0] if previous_run else None
        if previous_run is None:
            change = None
        elif not before:
            change = "new"
        else:
            change = "worse" if count > before else "better" if count < before else "same"
        rule = BY_CODE.get(code)
        results.append({"code": code, "table": table, "severity": severity, "count": count,
                        "name": stored.get(fp, {}).get("name") or (rule.name if rule else ""),
                        "message": stored.get(fp, {}).get("message") or (rule.message if rule else ""),
                        "previous": before, "change": change})
    return {"results": results, "previous_run": previous_run}


def _has_results(cur: Any, run_id: str) -> bool:
    from .. import store

    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {store.SCHEMA}.run_results WHERE run_id = %s::uuid)", (run_id,))
    row = cur.fetchone()
    return bool(row and row[0])


def _print_run(run: Any, detail: dict[str, Any]) -> None:
    from .. import store

    took = f" · took {(run.finished_at - run.started_at).total_seconds():.1f} s" if run.finished_at else ""
    console.print(f"{run.kind.capitalize()} run {run.id} ({run.status})", markup=False)
    console.print(f"  started  {run.started_at.strftime('%Y-%m-%d %H:%M:%S')} UTC{took} · user {run.db_user}",
                  markup=False)
    console.print(f"  summary  {store.describe(run)}", markup=False)
    if run.kind == "check":
        results = detail["results"]
        if not results:
            console.print("\nNothing failed in this run.", markup=False)
            return
        compared = (f"; compared with the previous check run {detail['previous_run'][:8]}"
                    if detail["previous_run"] else "; the first recorded check run")
        console.print(f"\nFailing results ({len(results)}){compared}:", markup=False)
        table = Table()
        for name, justify in (("rule", "left"), ("table", "left"), ("severity", "left"), ("count", "right"),
                              ("previous", "right"), ("finding", "left")):
            table.add_column(name, justify=justify, no_wrap=name != "finding")  # type: ignore[arg-type]
        for r in results:
            previous = "-" if r["previous"] is None else f"{r['previous']:,}"
            change = f" ({r['change']})" if r["change"] in ("new", "worse", "better") else ""
            table.add_row(r["code"], r["table"], r["severity"], f"{r['count']:,}", previous + change, r["message"])
        console.print(table)
        return
    rules = detail["rules"]
    if not rules:
        console.print("\nNo rule changed anything in this run." if run.kind == "fix"
                      else "\nNothing was restored by this run.", markup=False)
        return
    table = Table()
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    if run.kind == "fix":
        columns = ("rule", "table", "safety", "before", "changed", "archived", "skipped", "after")
        keys = ("code", "table", "safety", "before", "changed", "archived", "skipped", "after")
    else:
        columns = ("rule", "table", "action", "restored")
        keys = ("code", "table", "action", "restored")
    for name in columns:
        table.add_column(name, justify="left" if name in ("rule", "table", "safety", "action") else "right",
                         no_wrap=True)
    for r in rules:
        table.add_row(*("-" if r.get(k) is None else f"{r[k]:,}" if isinstance(r.get(k), int) else str(r[k])
                        for k in keys))
    console.print(table)
    if run.kind == "undo" and detail.get("conflict_count"):
        console.print(f"{detail['conflict_count']:,} rows could not be restored (--format json lists them).",
                      markup=False)
