"""Where the two chains stand: the application's `alembic_version`, and the tool's own version table.

The tool runs its chain standalone: Alembic keeps its state in `integrity.alembic_version` (Alembic's
`version_table_schema`), and the application's `public.alembic_version` is only ever read, so the
application's own `alembic upgrade head` never meets a revision its chain does not know. A database an
earlier mita-integrity moved (our ids in the application's table) is moved over by `move_legacy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .own_version import BASELINE, OWN, OWN_SCHEMA, OWN_TABLE, VERSION_WIDTH  # read by the migration commands


def version_table_options() -> dict[str, Any]:
    """Gives the context.configure() arguments that keep the chain's state in the tool's own table."""
    return {"version_table": OWN_TABLE, "version_table_schema": OWN_SCHEMA}


def prepare_own_table(conn: Connection) -> None:
    """Creates integrity.alembic_version, wide enough for our ids, unless it exists (Alembic then finds it)."""
    if _exists(conn, OWN):
        return
    conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {OWN_SCHEMA}"))
    conn.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {OWN} (version_num varchar({VERSION_WIDTH}) NOT NULL, "
                         f"CONSTRAINT {OWN_TABLE}_pkc PRIMARY KEY (version_num))"))


def _exists(conn: Connection, qualified: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": qualified}).scalar_one()


def _version(conn: Connection, qualified: str) -> str | None:
    if not _exists(conn, qualified):
        return None
    row = conn.execute(sa.text(f"SELECT version_num FROM {qualified} LIMIT 1")).first()
    return str(row[0]) if row else None


def own_revision(conn: Connection) -> str | None:
    """Gives the revision of the tool's chain (None: not recorded yet)."""
    return _version(conn, OWN)


def application_revision(conn: Connection) -> str | None:
    """Gives the revision in the application's public.alembic_version (None: no such table or row)."""
    return _version(conn, "public.alembic_version")


@dataclass(frozen=True)
class Revisions:
    """Both chains' revisions of one database."""

    application: str | None
    own: str | None


def read(conn: Connection) -> Revisions:
    """Gives where the application's chain and the tool's chain stand."""
    return Revisions(application_revision(conn), own_revision(conn))


@dataclass(frozen=True)
class Move:
    """What `migrate adopt` moved: our revision out of the application's table into the tool's own."""

    revision: str
    application_before: str
    application_after: str


def move_legacy(conn: Connection, chain: list[str]) -> Move | None:
    """Moves our revision from public.alembic_version into integrity.alembic_version, in one transaction.

    The application's table gets back the baseline, the last revision its own chain knows. Gives None when
    there is nothing to move (the application's table holds no revision of our chain above the baseline).
    The schema is not touched: only the two version rows change, so nothing is lost.
    """
    app = application_revision(conn)
    if app is None or app == BASELINE or app not in chain:
        return None
    own = own_revision(conn)
    if own is not None and own != BASELINE:
        raise ValueError(f"integrity.alembic_version already holds {own}")
    prepare_own_table(conn)
    conn.execute(sa.text(f"DELETE FROM {OWN}"))
    conn.execute(sa.text(f"INSERT INTO {OWN} (version_num) VALUES (:v)"), {"v": app})
    conn.execute(sa.text("UPDATE public.alembic_version SET version_num = :b WHERE version_num = :v"),
                 {"b": BASELINE, "v": app})
    return Move(app, app, BASELINE)


def _context_version_table() -> tuple[str, str]:
    """Gives (schema, table) of the version table of the running Alembic context."""
    from alembic import op

    ctx = op.get_context()
    return ctx.version_table_schema or "public", ctx.version_table


def widen_version_table(db: Any) -> None:
    """Widens the running context's version table to hold our ids (the application's, when exported)."""
    schema, table = _context_version_table()
    rows = db.query("SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = %s AND column_name = 'version_num'", schema, table)
    if rows and rows[0][0] is not None and rows[0][0] < VERSION_WIDTH:
        db.step(f"widen {schema}.{table}",
                f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN version_num TYPE varchar({VERSION_WIDTH})')


def narrow_version_table(db: Any) -> None:
    """Gives the application's version table back its width of the baseline (32); the tool's own keeps 64."""
    schema, table = _context_version_table()
    if (schema, table) == (OWN_SCHEMA, OWN_TABLE):
        return
    if db.query("SELECT to_regclass(%s)", f'"{schema}"."{table}"')[0][0]:
        db.step(f"narrow {schema}.{table}",
                f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN version_num TYPE varchar(32)')
