"""`changelog install | remove | status`: the triggers that log old keys for check --incremental (issue 19).

Additive to the CLI contract of DESIGN.md: nothing else changes when the log is absent (the rules that need
old keys then run in full in an incremental check, with the reason). runs/change_log.py holds the work.
"""

from __future__ import annotations

import json
from typing import Any

import click
import psycopg

from ..database.errors import DatabaseStateError
from .app import App, console


def _privilege(exc: psycopg.errors.InsufficientPrivilege) -> DatabaseStateError:
    return DatabaseStateError(f"the change log needs the owner of the MITA tables ({exc.diag.message_primary}); "
                              "nothing was changed", "run it as the role that owns public.transactions")


STATES = {"A": "enabled always", "O": "enabled (origin only: NOT proof)", "R": "replica only", "D": "DISABLED"}


@click.group("changelog")
def changelog_group() -> None:
    """The change log of old keys that lets check --incremental re-read only the groups a change touched."""


@changelog_group.command("install")
@click.pass_obj
def install_command(app: App) -> int:
    """Add the logging triggers on transactions and daily_plan (ENABLE ALWAYS; short locks, tried again)."""
    from ..database.connection import connect, transaction
    from ..runs import change_log, store

    with connect(app.database()) as conn:
        try:
            with transaction(conn, read_only=True) as cur:
                change_log.refuse_columns(cur)  # before the integrity schema is created: an error changes nothing
            store.ensure(conn)
            done = change_log.install(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _privilege(exc) from None
    for line in done:
        console.print(line, markup=False)
    console.print("incremental checks use the log from the next recorded check on (check --record)", markup=False)
    return 0


@changelog_group.command("remove")
@click.pass_obj
def remove_command(app: App) -> int:
    """Drop the logging triggers and their functions, and empty the log."""
    from ..database.connection import connect
    from ..runs import change_log

    with connect(app.database()) as conn:
        try:
            done = change_log.remove(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _privilege(exc) from None
    for line in done:
        console.print(line, markup=False)
    return 0


@changelog_group.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def status_command(app: App, fmt: str) -> int:
    """Whether the triggers are installed and enabled, and how big the log is."""
    from ..database.connection import connect, transaction
    from ..runs import change_log

    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        state = change_log.status(cur)
    if fmt == "json":
        out: dict[str, Any] = {"installed": state.installed, "triggers": state.triggers, "guard": state.guard,
                               "entries": state.entries, "bytes": state.bytes, "pruned_below": state.pruned_below}
        console.print_json(json.dumps(out))
        return 0
    console.print(f"change log: {'installed' if state.installed else 'not installed'}", markup=False)
    for table, events in state.triggers.items():
        said = ", ".join(f"{e} {'missing' if s is None else STATES.get(s, s)}" for e, s in events.items())
        console.print(f"  public.{table}: {said}", markup=False)
    said = ", ".join(f"{e} {'missing' if s is None else STATES.get(s, s)}" for e, s in state.guard.items())
    console.print(f"  {change_log.LOG} (its guard): {said}", markup=False)
    console.print(f"  {state.entries:,} entries, {state.bytes:,} bytes", markup=False)
    return 0
