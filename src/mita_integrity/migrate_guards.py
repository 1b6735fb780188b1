"""What `migrate upgrade|downgrade` checks before it changes anything: a session it can keep, and ownership."""

from __future__ import annotations

from pathlib import Path

from .connection import Database, connect, require_session
from .errors import DatabaseStateError
from .store import refuse_read_only

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
