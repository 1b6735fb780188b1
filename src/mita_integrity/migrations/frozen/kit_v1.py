"""What the migrations 0022-0027 share, version 1 — frozen: never edit this file.

The online DDL runner on the migration's own connection, their progress lines, the SQL files they ship,
the width of the version table, and the comparison of a same-named constraint with the one a migration
would add. Each is exactly what those migrations ran when they were written. A later migration that needs
something else imports a new module (kit_v2.py); tests/test_migration_freeze.py fails when this one changes.

What is not frozen is how the migration reaches the database and where its clean-up runs are recorded:
mita-integrity hands a `Host` over in the Alembic config's attributes (HOST), so the tool's own
bookkeeping (the versioned `integrity` schema, its connection settings) stays the tool's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, Protocol

import psycopg
from alembic import context, op

from . import online_v1
from .online_v1 import MigrationRefused, Online

# The key of the Alembic config attribute that holds the Host.
HOST = "mita_integrity.migration_host"

_QUIET: list[bool] = [False]


class Host(Protocol):
    """What mita-integrity provides to a running migration: connections, and the record of its clean-up runs."""

    def connect(self) -> psycopg.Connection[Any]:
        """Gives a new connection to the database being migrated (not autocommit)."""

    def start_run(self, conn: psycopg.Connection[Any], options: dict[str, Any]) -> str:
        """Records a fix run as started (committed); gives its id."""

    def finish_run(self, conn: psycopg.Connection[Any], run_id: str, status: str, summary: dict[str, Any]) -> None:
        """Records the end of the run."""


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


def host() -> Host:
    """Gives the Host mita-integrity handed over; refuses a migration started without one."""
    found: Host | None = context.config.attributes.get(HOST)
    if found is None:
        raise MigrationRefused("the migration was started without mita-integrity's host (its database)",
                               "run it with mita-integrity migrate, or alembic with DATABASE_URL set")
    return found


@contextmanager
def online() -> Iterator[Online]:
    """Gives the online DDL runner on the migration's own connection, outside Alembic's transaction.

    Under another driver (an application's env.py on psycopg2: an exported revision) the steps run on a
    psycopg connection of their own, while the migration's connection waits in autocommit holding no lock.
    """
    with op.get_context().autocommit_block():
        raw = op.get_bind().connection.dbapi_connection
        # The lock timeout read now, not at import: an operator (or a test) may set it for one run.
        timeout = online_v1.DEFAULT_LOCK_TIMEOUT_MS
        if isinstance(raw, psycopg.Connection):
            yield Online(raw, say=say, lock_timeout_ms=timeout)
            return
        own = host().connect()
        try:
            own.autocommit = True
            yield Online(own, say=say, lock_timeout_ms=timeout)
        finally:
            own.close()


def sql_file(name: str) -> str:
    """Gives the text of a SQL file shipped in migrations/sql (those files are frozen too)."""
    return resources.files("mita_integrity.migrations").joinpath("sql", name).read_text(encoding="utf-8")


# -- the version table -------------------------------------------------------------------------------------
VERSION_WIDTH = 64  # our revision ids reach 37 characters; Alembic's own default column holds 32
OWN = ("integrity", "alembic_version")


def _context_version_table() -> tuple[str, str]:
    """Gives (schema, table) of the version table of the running Alembic context."""
    ctx = op.get_context()
    return ctx.version_table_schema or "public", ctx.version_table


def widen_version_table(db: Online) -> None:
    """Widens the running context's version table to hold our ids (the application's, when exported)."""
    schema, table = _context_version_table()
    rows = db.query("SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = %s AND column_name = 'version_num'", schema, table)
    if rows and rows[0][0] is not None and rows[0][0] < VERSION_WIDTH:
        db.step(f"widen {schema}.{table}",
                f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN version_num TYPE varchar({VERSION_WIDTH})')


def narrow_version_table(db: Online) -> None:
    """Gives the application's version table back its width of the baseline (32); the tool's own keeps 64."""
    schema, table = _context_version_table()
    if (schema, table) == OWN:
        return
    if db.query("SELECT to_regclass(%s)", f'"{schema}"."{table}"')[0][0]:
        db.step(f"narrow {schema}.{table}",
                f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN version_num TYPE varchar(32)')


# -- same-named constraints --------------------------------------------------------------------------------
# Both sides of a CHECK are compared through the planner: EXPLAIN of a filter by the expected expression and
# by the constraint's own gives the same text exactly when the server reads them as the same expression.
Run = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]

# 0024's CHECK constraints: name -> (table, expression).
CHECKS_0024: dict[str, tuple[str, str]] = {
    "ck_goals_saved_le_target": ("goals", "saved_amount <= target_amount"),
    "ck_goals_progress_le_100": ("goals", "progress <= 100"),
    "ck_goals_target_positive": ("goals", "target_amount > 0"),
    "ck_transactions_amount_nonnegative": ("transactions", "amount >= 0 OR category IN ('refund', 'income')"),
    "ck_daily_plan_planned_nonnegative": ("daily_plan", "planned_amount >= 0"),
}
UNIQUE_0023 = "uq_daily_plan_user_date_category"
UNIQUE_COLUMNS = ("user_id", "date", "category")


def _plan(run: Run, table: str, expression: str) -> str:
    rows = run(f'EXPLAIN (VERBOSE, COSTS OFF) SELECT 1 FROM public."{table}" WHERE {expression}', ())
    return "\n".join(str(r[0]) for r in rows)


def check_mismatch(run: Run, name: str) -> str | None:
    """Gives how an existing 0024 CHECK differs from the migration's, or None when it is absent or says the same."""
    table, expected = CHECKS_0024[name]
    rows = run("SELECT contype::text, pg_get_expr(conbin, conrelid) FROM pg_constraint "
               "WHERE conname = %s AND conrelid = to_regclass(%s)", (name, f"public.{table}"))
    if not rows:
        return None
    kind, actual = rows[0]
    if kind != "c" or not actual:
        return f"{name} on {table} is not a CHECK constraint"
    if _plan(run, table, actual) == _plan(run, table, expected):
        return None
    return f"{name} on {table} is CHECK ({actual}), not CHECK ({expected})"


def unique_mismatch(run: Run) -> str | None:
    """Gives how an existing uq_daily_plan_user_date_category differs from 0023's UNIQUE NULLS NOT DISTINCT
    (user_id, date, category) without a predicate, or None."""
    rows = run("""SELECT con.contype::text,
                         array(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, i)
                                 JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.i),
                         x.indisunique, x.indpred IS NOT NULL OR x.indexprs IS NOT NULL,
                         coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false),
                         x.indrelid = to_regclass('public.daily_plan')
                    FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace
                    JOIN pg_index x ON x.indexrelid = i.oid
                    LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.conname = i.relname
                   WHERE n.nspname = 'public' AND i.relname = %s""", (UNIQUE_0023,))
    if not rows:
        other = run("SELECT contype::text FROM pg_constraint WHERE conname = %s "
                    "AND conrelid = to_regclass('public.daily_plan')", (UNIQUE_0023,))
        return f"{UNIQUE_0023} on daily_plan is not a unique key" if other else None
    kind, columns, unique, partial, nulls_not_distinct, on_daily_plan = rows[0]
    expected = f"UNIQUE NULLS NOT DISTINCT ({', '.join(UNIQUE_COLUMNS)})"
    if not on_daily_plan:
        return f"{UNIQUE_0023} is an index of another table, not {expected} of daily_plan"
    shape = f"({', '.join(columns)})" + (" with a predicate or expressions" if partial else "")
    if kind not in (None, "u") or not unique:
        return f"{UNIQUE_0023} on daily_plan is not unique: {shape}, not {expected}"
    if tuple(columns) != UNIQUE_COLUMNS or partial:
        return f"{UNIQUE_0023} on daily_plan is on {shape}, not {expected}"
    if not nulls_not_distinct:
        nullable = run("SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'public.daily_plan'::regclass "
                       "AND attname = 'category'", ())
        if nullable and nullable[0][0]:
            return f"{UNIQUE_0023} on daily_plan lets NULL categories repeat (not NULLS NOT DISTINCT)"
    return None


def refuse_other_definitions(db: Online, *, unique: bool, checks: Sequence[str]) -> None:
    """Stops the migration, before it changes anything, where a constraint it would add exists under its name
    with another definition: skipping it as present would report success for a key that is not ours."""
    found = [m for m in ([unique_mismatch(db.run)] if unique else []) + [check_mismatch(db.run, n) for n in checks]
             if m]
    if found:
        raise MigrationRefused(
            f"{'; '.join(found)}: a constraint of that name exists with another definition",
            "drop or rename it (it was not made by this migration), then run the migration again")
