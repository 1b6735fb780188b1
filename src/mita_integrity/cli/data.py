"""`seed` and `demo`: realistic MITA data with known defects."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..database.connection import connect
from ..database.errors import UsageError
from ..database.urls import build_url
from .app import App, console, note


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), transient=True, console=Console(stderr=True),
    )
    task = bar.add_task("seeding", total=1)
    with bar:
        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=max(total, 1))
        yield update


def _check_writable(path: Path) -> None:
    folder = path.expanduser().resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {path}: the folder does not exist or is not writable")


@click.command("seed")
@click.option("--users", type=click.IntRange(min=1, max=2_000_000), default=1000, show_default=True)
@click.option("--days", type=click.IntRange(min=1, max=3650), default=30, show_default=True)
@click.option("--seed", "seed_value", type=int, default=1, show_default=True,
              help="Random seed (same seed, same data).")
@click.option("--corrupt", is_flag=True, help="Also inject every kind of defect in known numbers.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --corrupt: write {rule code: expected count} as JSON.")
@click.option("--replace", is_flag=True, help="Empty the MITA tables first (otherwise they must be empty).")
@click.pass_obj
def seed_command(app: App, users: int, days: int, seed_value: int, corrupt: bool, truth: Path | None,
                 replace: bool) -> int:
    """Fill a migrated database with realistic MITA data."""
    if truth and not corrupt:
        raise UsageError("--truth needs --corrupt (a clean seed has no injected defects to count)")
    if truth:
        _check_writable(truth)
    from ..seed import SeedOptions, seed_database

    db = app.database()
    options = SeedOptions(users=users, days=days, seed=seed_value, corrupt=corrupt, replace=replace)
    with connect(db) as conn, _progress_bar(app.interactive) as progress:
        result = seed_database(conn, options, progress=progress)
    table = Table(title=f"seeded {db.display} in {result.seconds:.1f} s", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in sorted(result.rows.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{rows:,}")
    console.print(table)
    if corrupt:
        codes = sorted(k for k in result.truth if "." not in k)
        listing = ", ".join(f"{c}={result.truth[c]}" for c in codes)
        console.print(f"injected defects for {len(codes)} rule codes: {listing}")
    if truth:
        truth.write_text(json.dumps(result.truth, indent=2, sort_keys=True) + "\n")
        note(f"expected counts written to {truth}")
    return 0


@click.command("demo")
@click.option("--users", type=click.IntRange(min=10, max=200_000), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=1, max=365), default=30, show_default=True)
@click.option("--seed", "seed_value", type=int, default=42, show_default=True)
@click.pass_obj
def demo_command(app: App, users: int, days: int, seed_value: int) -> int:
    """Walk through the system on a demo database of its own (embedded PostgreSQL unless --db is given)."""
    from .demo import DEMO_DATABASE, run_demo

    server = app.database(DEMO_DATABASE)
    console.print(f"mita-integrity demo on {server.with_dbname(DEMO_DATABASE).display}")
    with _progress_bar(app.interactive) as progress:
        result = run_demo(server, users=users, days=days, seed=seed_value, say=console.print, progress=progress)
    from .. import report as reports
    from .repair import render_outcome, render_plan
    from .verify import render_scorecard

    console.print("\nThe report before any repair:")
    sys.stdout.write(reports.render(result.report, "text", color=sys.stdout.isatty()))
    console.print("")
    render_plan(result.plan, show_sql=False)
    console.print("")
    render_outcome(result.fixed)
    console.print("")
    console.print(f"The scorecard at {result.head}:", markup=False)
    render_scorecard(result.scorecard)
    params = result.database.parsed.params
    url = build_url(params, mask_password=True)
    console.print("")
    console.print("The safe repairs are applied and the schema is at head; a FAIL above waits for a person: resolve "
                  "the rows it names (its evidence says how), then `mita-integrity migrate validate` and "
                  "`mita-integrity verify`. Continue with:")
    if params.get("password"):
        console.print(f"  export DATABASE_URL='{url}'   # with your password in place of ***")
    else:
        console.print(f"  export DATABASE_URL='{url}'")
    console.print("  mita-integrity check --format html --output report.html   # the same report, for a browser")
    console.print("  mita-integrity rules BUD001                               # what a rule finds and why")
    console.print("  mita-integrity fix                                        # the plan for what is left, with SQL")
    preview = result.undo_preview
    if preview.conflicts:  # the migrations changed rows since the fix: --apply would restore nothing
        console.print(f"  mita-integrity undo {result.fixed.run_id}   # a dry run: {len(preview.conflicts):,} of "
                      f"{preview.pending_before:,} repaired rows can no longer go back (the migrations changed "
                      "them since); nothing to apply")
    else:
        console.print(f"  mita-integrity undo {result.fixed.run_id} --apply   # put every repaired row back")
    console.print("  mita-integrity runs                                       # the history of fix and undo runs")
    console.print("  mita-integrity verify                                     # the scorecard again")
    console.print("  mita-integrity migrate downgrade 0021_add_habit_completions_table   # back to the baseline")
    return 0
