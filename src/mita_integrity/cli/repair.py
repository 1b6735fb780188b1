"""`fix`, `undo` and `runs`: the repairing half, and its history."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..wording import counted
from .app import App, console, note
from .checks import _duration_ms
from .config import settled


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
    console.print(f"{counted(outcome.changed, 'row')} changed, {outcome.archived:,} archived in integrity.archive. "
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
    request = settled(app, request)  # the project file's settings under the typed flags
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
