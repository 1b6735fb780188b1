"""`migrate adopt`: moves a database an earlier mita-integrity migrated onto the tool's own table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..database.chain_state import Move, move_legacy


def adopt(db: Any) -> Move | None:
    """`migrate adopt`: moves a database an earlier mita-integrity migrated onto the tool's own version table.

    One transaction: integrity.alembic_version gets our revision, the application's alembic_version gets the
    baseline back. Gives None when there is nothing to move.
    """
    from .guards import one_migration_at_a_time

    with one_migration_at_a_time(db, "migrate adopt"):  # not while an upgrade moves the very rows it moves
        return _adopt(db)


def _adopt(db: Any) -> Move | None:
    from ..database.connection import connect
    from ..database.errors import DatabaseStateError
    from ..runs.store import refuse_read_only
    from .command import engine_for, revisions

    with connect(db) as raw, raw.cursor() as cur:
        refuse_read_only(cur, "migrate adopt")
    engine = engine_for(db)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            try:
                return move_legacy(conn, [r.id for r in revisions()])
            except ValueError as exc:
                raise DatabaseStateError(f"migrate adopt: {exc}; nothing was changed",
                                         "the database already runs the tool's chain standalone") from None
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise DatabaseStateError(f"migrate adopt failed and was rolled back: {first}") from None
    finally:
        engine.dispose()
