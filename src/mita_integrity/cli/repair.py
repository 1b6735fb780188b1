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

from ..report import next_steps
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
    revision = plan.report.database.alembic_revision
    groups: dict[str, list[Any]] = {}
    for item in left:
        groups.setdefault(next_steps.why_left(item, revision), []).append(item)
    for reason in sorted(groups, key=next_steps.LEFT_ORDER.index):
        listed = ", ".join(f"{i.code} {i.table} ({i.rows:,})" for i in groups[reason])
        console.print(f"\n{reason[0].upper()}{reason[1:]} ({len(groups[reason])}): {listed}", markup=False)
    if 0 < len(left) <= 10:
        for item in left:
            evidence = ", ".join(item.result.sample[:5]) or "-"
            what = next_steps.hint(item.result, revision) if next_steps.step(item.result, revision) else item.action
            console.print(f"  {item.code} {item.table}: {what} Evidence: {evidence}", markup=False)
    console.print("\n" + plan_summary(plan.rows_to_change, len(plan.to_apply),
                                      {reason: len(items) for reason, items in groups.items()}), markup=False)


def plan_summary(rows: int, rules: int, left: dict[str, int]) -> str:
    """Gives the plan's last line: what --apply would change (only when something), and what is left, by why."""
    rest = (f"{counted(sum(left.values()), 'finding')} left ({next_steps.left_split(left)}; "
            "`mita-integrity rules CODE` explains one)") if left else ""
    if not rules:
        return f"Nothing to apply: no failing rule has a safe repair. {rest[0].upper()}{rest[1:]}." if rest else (
            "Nothing to apply.")
    change = f"{counted(rows, 'row')} to change in {counted(rules, 'rule')}"
    return f"{change}; {rest}. Apply with: mita-integrity fix --apply" if rest else (
        f"{change}. Apply with: mita-integrity fix --apply")


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
                  f"Undo with: mita-integrity undo {outcome.run_id} --apply", markup=False)


@click.command("fix")
@click.option("--apply", "do_apply", is_flag=True,
              help="Execute the repairs (default: a dry run that changes nothing).")
@click.option("--unsafe", is_flag=True, help="Also apply repairs that are guesses (safety: unsafe).")
@click.option("--select", multiple=True, metavar="CODES", help="Only these rules: codes, prefixes (REF) or names.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Leave these rules out.")
@click.option("--batch-size", type=int, default=5000, show_default=True, help="Rows (or keys) per transaction.")
@click.option("--max-rows", type=int, metavar="N", help="Refuse a plan that would change more than N rows.")
@click.option("--budget-days", type=int, default=30, show_default=True, help="BUD001's window in days.")
@click.option("--day-boundary", type=click.Choice(["utc", "user-timezone"]), default="utc", show_default=True,
              help="The day a transaction belongs to (BUD001's recompute): its UTC day, or its day in the "
                   "user's timezone.")
@click.option("--lock-timeout", default="2", show_default=True, metavar="SECONDS",
              help="A batch gives up waiting for a lock after this long (then retries, then leaves it).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-sql", is_flag=True, help="Dry run: do not print the SQL.")
@click.pass_obj
def fix_command(app: App, do_apply: bool, unsafe: bool, select: tuple[str, ...], ignore: tuple[str, ...],
                batch_size: int, max_rows: int | None, budget_days: int, day_boundary: str, lock_timeout: str,
                fmt: str, no_sql: bool) -> int:
    """Plan repairs of the failing rules (dry run), or --apply them with archive, in batches."""
    from ..repair.apply import apply_fix
    from ..repair.plan import FixRequest, plan_fix, validate

    request = FixRequest(select=select, ignore=ignore, unsafe=unsafe, batch_size=batch_size, max_rows=max_rows,
                         budget_days=budget_days, day_boundary=day_boundary,
                         lock_timeout_ms=_duration_ms(lock_timeout, "--lock-timeout"))
    request = settled(app, request)  # the project file's settings under the typed flags
    validate(request)
    if do_apply:
        _refuse_read_only(app, "fix --apply")
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


def _refuse_read_only(app: App, what: str) -> None:
    """Refuses a write on a server that only reads before anything else runs: on a standby, replay may cancel
    any longer query (a recovery conflict), so the one-line refusal must come first."""
    from ..database.connection import connect, transaction
    from ..runs import store

    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        store.refuse_read_only(cur, what)


@click.command("undo")
@click.argument("run_id")
@click.option("--apply", "do_apply", is_flag=True,
              help="Restore every row, or none when any conflicts (default: a dry run that changes nothing).")
@click.option("--partial", is_flag=True, help="Restore what can be restored and list the rest (implies --apply).")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=5000, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def undo_command(app: App, run_id: str, do_apply: bool, partial: bool, batch_size: int, fmt: str) -> int:
    """Show what undoing fix run RUN_ID would restore and every conflict (dry run), or --apply it: all or nothing."""
    from ..repair.undo import UndoMode, undo_run

    mode = UndoMode.PARTIAL if partial else UndoMode.ALL if do_apply else UndoMode.DRY_RUN
    db = app.database()
    with _bar(app.interactive and fmt == "text", "restoring", 0) as advance:
        outcome = undo_run(db, run_id, batch_size, (lambda n: advance("restoring", n)) if advance else None,
                           mode=mode)
    if fmt == "json":
        console.print_json(json.dumps({"run_id": outcome.run_id, **outcome.summary()}))
    else:
        render_undo(outcome)
    return 1 if outcome.conflicts else 0


def render_undo(outcome: Any) -> None:
    """Prints what an undo restored (or would restore), each conflict with its reason, and what to do next."""
    run, pending = outcome.undone_run, outcome.pending_before
    mode = outcome.mode.value
    if mode == "dry-run":
        head = (f"Undo of run {run} (dry run: nothing changed): {outcome.restored:,} of {pending:,} archived rows "
                "would be restored")
    elif outcome.applied:
        head = (f"Undo run {outcome.run_id}: {outcome.restored:,} of {pending:,} archived rows of run {run} restored "
                f"in {outcome.seconds:.1f} s")
    else:
        head = (f"Undo run {outcome.run_id}: nothing restored (all or nothing): {len(outcome.conflicts):,} of "
                f"{pending:,} archived rows of run {run} conflict")
    listed = outcome.conflicts and (mode == "dry-run" or outcome.applied)
    console.print(head + (f"; {counted(len(outcome.conflicts), 'conflict')}." if listed else "."), markup=False)
    for c in outcome.conflicts[:20]:
        console.print(f"  conflict: {c.table} {json.dumps(c.pk)} ({c.action}): {c.reason}", markup=False)
    if len(outcome.conflicts) > 20:
        more = "mita-integrity runs --format json" if outcome.run_id else f"mita-integrity undo {run} --format json"
        console.print(f"  … and {len(outcome.conflicts) - 20:,} more ({more})", markup=False)
    if mode == "dry-run":
        if outcome.conflicts:
            console.print(f"While a row conflicts, `mita-integrity undo {run} --apply` restores nothing. Resolve the "
                          f"conflicts, or restore the rest with: mita-integrity undo {run} --partial", markup=False)
        else:
            console.print(f"Restore them with: mita-integrity undo {run} --apply", markup=False)
    elif outcome.conflicts and outcome.applied:
        console.print(f"{counted(len(outcome.conflicts), 'row')} not restored. Resolve them, then run "
                      f"`mita-integrity undo {run}` again.", markup=False)
    elif outcome.conflicts:
        console.print(f"Resolve the conflicts and run `mita-integrity undo {run} --apply` again, or restore the rest "
                      f"with: mita-integrity undo {run} --partial", markup=False)
