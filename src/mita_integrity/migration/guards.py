"""What `migrate` checks before it changes anything: the baseline floor, one migration at a time, a session it
can keep, and ownership."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from ..database.connection import Database, connect, detect_pooling, require_session
from ..database.errors import DatabaseStateError, UsageError
from ..runs.store import refuse_read_only

# Revisions that run CREATE/DROP INDEX CONCURRENTLY through Online.outside(): session SETs around a statement
# outside any transaction, which a transaction pooler cannot carry (docs/poolers.md; a test keeps this in sync).
NEEDS_SESSION = {
    "0022_add_missing_fk_constraints": "CREATE/DROP INDEX CONCURRENTLY ix_subscriptions_deleted_at",
    "0023_add_unique_constraint_daily_plan": "CREATE/DROP INDEX CONCURRENTLY of the daily_plan indexes",
    "0026_complete_user_foreign_keys": "CREATE/DROP INDEX CONCURRENTLY of the user_id indexes",
}

# The tables a migration alters, and alembic_version, that the role does not own (directly or through a role
# it belongs to). ALTER TABLE, CREATE INDEX and CREATE TRIGGER all need ownership.
_NOT_OWNED = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
   AND c.relname = ANY(%s) AND NOT pg_has_role(current_user, c.relowner, 'USAGE')
 ORDER BY c.relname"""


def require_session_for(db: Database, action: str, target: str, steps: list[str], backup: Path | None) -> None:
    """Refuses, before anything is done, a move with a step a transaction pooler cannot carry."""
    needs = [f"{rev} runs {NEEDS_SESSION[rev]}" for rev in steps if rev in NEEDS_SESSION]
    if needs or backup is not None:
        require_session(db, f"migrate {action} {target}",
                        (needs or ["--backup runs pg_dump, which sets session settings before its snapshot"])[0])


def require_owner(db: Database, action: str, target: str, steps: list[str], tables: tuple[str, ...]) -> None:
    """Refuses, before anything is done, a move on a server that only reads, or by a role that does not own the
    tables the migrations alter."""
    if not steps:
        return
    with connect(db) as conn, conn.cursor() as cur:
        refuse_read_only(cur, f"migrate {action} {target}")
        row = cur.execute("SELECT current_user").fetchone()
        missing = [r[0] for r in cur.execute(_NOT_OWNED, (["alembic_version", *tables],)).fetchall()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DatabaseStateError(
            f"migrate {action} {target}: role {row[0] if row else '?'} does not own {shown}; migrations run as "
            "the owner of the MITA tables; nothing was changed",
            "run migrate with the owner's URL (docs/least-privilege.md)",
        )


# The baseline stands for the application's own schema (its migrations 0001-0021): the chain never goes below
# it, whatever the spelling (-1 at the baseline, base, -N, or a revision of the application's own chain).
FLOOR = "0021_add_habit_completions"


def require_above_floor(action: str, target: str, steps: list[str] | None) -> None:
    """Refuses, before anything is done, a downgrade that would undo the baseline (drop every MITA table).

    steps: the revisions the downgrade would run, or None before they are known (the spelling alone is judged).
    """
    if action != "downgrade":
        return
    below = target == "base" or _below_floor_id(target)
    if steps is not None:  # -N that reaches past the first revision gives no steps at all
        relative = re.search(r"-\d+$", target) is not None
        below = below or FLOOR in steps or (relative and not steps)
    if below:
        raise UsageError(
            f"migrate downgrade {target}: refused, it would go below the baseline {FLOOR} and drop every MITA "
            "table; nothing was changed",
            f"the lowest revision this tool downgrades to is {FLOOR} (the application's own schema)",
        )


def _below_floor_id(target: str) -> bool:
    """Tells whether target names a revision of the application's chain before the baseline (0001_…-0020_…)."""
    head = target.split("_", 1)[0]
    return head.isdigit() and len(head) == 4 and int(head) < int(FLOOR[:4])


# One migration at a time per database, with an advisory lock held for the whole command by a connection of its
# own. On a direct (or session-mode) connection: a session lock on an autocommit connection — never an open
# transaction, which CREATE INDEX CONCURRENTLY would wait for until its lock_timeout. Through a transaction pooler
# a session lock would stay behind on a pooled server connection, so there: a transaction-level lock held in an
# open transaction, which the pooler keeps on one server connection (as schedule's lock; no concurrent index
# build runs through such a pooler: NEEDS_SESSION refuses it).
LOCK_KEY = 0x6D696772  # "migr"; advisory locks are per database already


@contextmanager
def one_migration_at_a_time(db: Database, doing: str) -> Iterator[None]:
    """Holds the migration lock while the block runs; refuses in one line when another migration holds it."""
    pooled = detect_pooling(db).transaction
    conn = connect(db, autocommit=not pooled)
    try:
        if pooled:
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")  # idle while the migration works
        take = "pg_try_advisory_xact_lock" if pooled else "pg_try_advisory_lock"
        row = conn.execute(f"SELECT {take}(%s)", (LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            holder = conn.execute(
                """SELECT l.pid, extract(epoch FROM now() - a.backend_start)::int FROM pg_locks l
                     LEFT JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1
                      AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    LIMIT 1""", (LOCK_KEY,)).fetchone()
            who = f" (server pid {holder[0]}, connected {holder[1] or 0} s ago)" if holder else ""
            raise DatabaseStateError(
                f"{doing}: another migration is running on this database{who}; nothing was changed",
                "one migration at a time: wait until it ends, then run again (it continues from where that one "
                "left the database)",
            )
        yield
    finally:
        try:
            if pooled:
                conn.rollback()  # ends the transaction: releases the lock
            conn.close()  # a session lock goes with its session
        except psycopg.Error:
            pass  # a lost session has released the lock already
