"""seed_database: the stages of a seed, in one transaction, with progress and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import psycopg

from ..database.errors import DatabaseStateError, MitaIntegrityError
from . import (
    accounts,
    activity,
    corrupt_orphans,
    corrupt_people,
    corrupt_plan,
    corrupt_spending,
    goals,
    indexes,
    natural,
    people,
    preflight,
    spending,
    telemetry,
    victims,
)
from .context import SeedRun
from .options import SeedOptions, SeedResult
from .plan import MITA_TABLES

Progress = Callable[[str, int, int], None]
Stage = tuple[str, Callable[[SeedRun], None]]

# Generous for a bulk load inside one transaction; SET LOCAL, so nothing outlives the seed.
_SETTINGS = (
    "SET LOCAL TimeZone TO 'UTC'",
    "SET LOCAL synchronous_commit TO off",
    "SET LOCAL work_mem TO '256MB'",
    "SET LOCAL maintenance_work_mem TO '1GB'",
    "SET LOCAL lock_timeout TO '10s'",
    "SET LOCAL statement_timeout TO 0",
)
# Caching a per-user series that is never asked for twice only costs (PostgreSQL 14 and later).
_SETTINGS_14 = ("SET LOCAL enable_memoize TO off",)


def _stages(options: SeedOptions) -> list[Stage]:
    corrupt = options.corrupt
    saved: list[indexes.SavedIndex] = []
    foreign: list[indexes.SavedForeignKey] = []

    def parameters(run: SeedRun) -> None:
        # Indexes and foreign keys go first and come back once all rows are in (see indexes.py).
        saved.extend(indexes.saved_indexes(run.cur, MITA_TABLES))
        foreign.extend(indexes.saved_foreign_keys(run.cur, MITA_TABLES))
        indexes.drop_foreign_keys(run.cur, foreign)
        indexes.drop_indexes(run.cur, saved)
        people.create_seed_users(run)
        if corrupt:
            victims.choose_victims(run)
            corrupt_people.break_incomes(run)

    def users(run: SeedRun) -> None:
        people.insert_users(run)
        goals.insert_goals(run)
        if corrupt:
            corrupt_people.add_bad_users(run)
            corrupt_people.add_bad_goals(run)

    def transactions(run: SeedRun) -> None:
        spending.insert_transactions(run)
        if corrupt:
            # The defects look their victims' transactions up by id: build that index now, not last.
            early = [ix for ix in saved if ix.table == "transactions" and ix.constraint]
            indexes.restore_indexes(run.cur, early)
            saved[:] = [ix for ix in saved if ix not in early]
            corrupt_spending.collect_first_transactions(run)
            corrupt_spending.add_bad_transactions(run)

    def calendar(run: SeedRun) -> None:
        spending.insert_daily_plan(run)
        if corrupt:
            corrupt_spending.add_orphan_transactions(run)

    def others(run: SeedRun) -> None:
        accounts.insert_accounts(run)
        activity.insert_activity(run)
        telemetry.insert_telemetry(run)
        telemetry.insert_legacy(run)
        if corrupt:
            corrupt_orphans.add_orphan_rows(run)

    def rebuild(run: SeedRun) -> None:
        indexes.restore_indexes(run.cur, saved)
        indexes.restore_foreign_keys(run.cur, foreign)

    def finish(run: SeedRun) -> None:
        if corrupt:
            corrupt_plan.break_plan(run)
            natural.count_natural(run)
        run.execute("ANALYZE " + ", ".join(MITA_TABLES))

    return [("users", parameters), ("accounts and goals", users), ("transactions", transactions),
            ("daily plan", calendar), ("other tables", others), ("indexes", rebuild), ("defects and analyze", finish)]


def seed_database(conn: psycopg.Connection, options: SeedOptions, progress: Progress | None = None) -> SeedResult:
    """Fills an empty baseline database with realistic MITA data (and known defects); gives what it did.

    Everything happens in one transaction: on any error nothing is left behind (no rows, no dropped index).
    """
    options = options.validated()
    started = time.perf_counter()
    stages = _stages(options)
    timings: dict[str, float] = {}
    report = progress or (lambda stage, done, total: None)
    try:
        with conn.transaction(), conn.cursor() as cur:
            for setting in _SETTINGS + (_SETTINGS_14 if conn.info.server_version >= 140000 else ()):
                cur.execute(setting)
            preflight.check_schema(cur)
            preflight.empty_or_replace(cur, options.replace)
            preflight.fresh_storage(cur)
            run = SeedRun(cur, options, options.anchor_utc(_server_now(cur)))
            report("preparing", 0, len(stages))
            for done, (name, stage) in enumerate(stages, start=1):
                report(name, done - 1, len(stages))
                began = time.perf_counter()
                stage(run)
                timings[name] = round(time.perf_counter() - began, 3)
            report("committing", len(stages), len(stages))
    except MitaIntegrityError:
        raise
    except psycopg.errors.LockNotAvailable:
        raise DatabaseStateError("the MITA tables are in use by another session",
                                 "stop what is using the database, then seed again") from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseStateError(f"seeding failed and was rolled back: {first}",
                                 "nothing was written; run again with --debug for details") from exc
    report("done", len(stages), len(stages))
    truth, by_table = run.truth.frozen() if options.corrupt else ({}, {})
    return SeedResult(
        rows={t: run.rows[t] for t in MITA_TABLES if run.rows[t]},
        truth=truth, truth_by_table=by_table, seconds=round(time.perf_counter() - started, 3),
        anchor=run.anchor, stage_seconds=timings,
    )


def _server_now(cur: psycopg.Cursor) -> datetime:
    cur.execute("SELECT now()")
    row = cur.fetchone()
    assert row is not None
    return row[0]
