"""What the migrations 0022-0026 share: an online DDL runner on the migration's connection, and the clean-up.

A migration's body runs in Alembic's autocommit block, so each of its steps commits on its own (a killed
migration keeps what it finished and re-running continues); Alembic records the revision only after the
body completed. Data the new constraint would reject is cleaned with the safe repairs of `fix` — same
rules, same archive (the run is recorded with the migration's name, and `undo` works on it) — through
connections of their own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources

import psycopg
from alembic import context, op

from . import online as online_module
from .connection import Database, connect
from .errors import DatabaseStateError
from .online import Online
from .wording import counted

_QUIET: list[bool] = [False]


def say(line: str) -> None:
    """Prints a progress line of a migration (stderr: stdout stays for results), unless quieted."""
    if not _QUIET[-1]:
        print(line, file=sys.stderr, flush=True)


@contextmanager
def quiet() -> Iterator[None]:
    """Silences the migrations' progress lines (the demo sums them up itself)."""
    _QUIET.append(True)
    try:
        yield
    finally:
        _QUIET.pop()


@contextmanager
def online() -> Iterator[Online]:
    """Gives the online DDL runner on the migration's own connection, outside Alembic's transaction.

    Under another driver (an application's env.py on psycopg2: an exported revision) the steps run on a
    psycopg connection of their own, while the migration's connection waits in autocommit holding no lock.
    """
    with op.get_context().autocommit_block():
        raw = op.get_bind().connection.dbapi_connection
        # The lock timeout read now, not at import: an operator (or a test) may set it for one run.
        timeout = online_module.DEFAULT_LOCK_TIMEOUT_MS
        if isinstance(raw, psycopg.Connection):
            yield Online(raw, say=say, lock_timeout_ms=timeout)
            return
        with connect(database(), autocommit=True) as own:
            yield Online(own, say=say, lock_timeout_ms=timeout)


def refuse_other_definitions(db: Online, *, unique: bool, checks: Sequence[str]) -> None:
    """Stops the migration, before it changes anything, where a constraint it would add exists under its name
    with another definition: skipping it as present would report success for a key that is not ours."""
    from .definitions import check_mismatch, unique_mismatch

    found = [m for m in ([unique_mismatch(db.run)] if unique else []) + [check_mismatch(db.run, n) for n in checks]
             if m]
    if found:
        raise DatabaseStateError(
            f"{'; '.join(found)}: a constraint of that name exists with another definition",
            "drop or rename it (it was not made by this migration), then run the migration again")


def database() -> Database:
    """Gives the database being migrated: handed over by mita-integrity or env.py, else the migration's URL."""
    db = context.config.attributes.get("database")
    if isinstance(db, Database):
        return db
    from .migration_api import database_of_bind

    found = database_of_bind(op.get_bind())
    if found is None:
        raise DatabaseStateError("the migration was started without a database to clean up through",
                                 "run it with mita-integrity migrate, or alembic with DATABASE_URL set")
    context.config.attributes["database"] = found
    return found


def clean_up(revision: str, codes: Sequence[str], *, budget_days: int = 30) -> int:
    """Runs the safe repairs of these rules with archive (a recorded fix run); gives the rows changed."""
    from .fix import FixRequest, plan_fix
    from .fix_apply import apply_fix

    db = database()
    request = FixRequest(select=tuple(codes), budget_days=budget_days, origin=revision)
    plan = plan_fix(db, request)
    if not plan.to_apply:
        say(f"    clean-up ({', '.join(codes)}): nothing to repair")
        return 0
    outcome = apply_fix(db, plan, request)
    for item in outcome.items:
        say(f"    {item.item.code} {item.item.table}: {counted(item.done.changed, 'row')} repaired, archived in run "
            f"{outcome.run_id} ({item.after or 0} left)")
        for note in item.done.notes if item.after else ():
            say(f"      left: {note}")
    say(f"    clean-up archived {counted(outcome.archived, 'row')}; `mita-integrity undo {outcome.run_id}` would put "
        "them back")
    return outcome.changed


def sql_file(name: str) -> str:
    """Gives the text of a SQL file shipped in migrations/sql."""
    return resources.files("mita_integrity.migrations").joinpath("sql", name).read_text(encoding="utf-8")
