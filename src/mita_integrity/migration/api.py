"""The stable API that revision files written by `migrate export` call — version 1.

A file exported into the application's Alembic chain holds no migration code of its own: it calls
`require(1)` when loaded, and `upgrade(STEP)` / `downgrade(STEP)` from its own upgrade() and downgrade(),
STEP being the id of a revision of mita-integrity's chain. These three names and their meaning are a
contract: a later mita-integrity keeps them for API version 1, or refuses with one clear line (never a
silently different migration). Everything else in the package may change.

A step runs exactly as in mita-integrity's own chain — online (short locks, NOT VALID then VALIDATE,
CREATE INDEX CONCURRENTLY inside Alembic's `autocommit_block()`), idempotent and reversible — on the
application's connection when it is psycopg 3, else (psycopg2) on a psycopg connection of its own to the
same database: the URL of the application's engine, else DATABASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..database.connection import Database
from ..database.errors import DatabaseStateError

API_VERSION = 1


def require(version: int) -> None:
    """Refuses an exported file written for an API version this package does not provide."""
    if version != API_VERSION:
        raise DatabaseStateError(
            f"this revision file was exported for mita-integrity's migration API {version}; the installed "
            f"mita-integrity provides API {API_VERSION}",
            "install the mita-integrity that exported it, or export the chain again (mita-integrity migrate export)")


def upgrade(step: str) -> None:
    """Runs the upgrade of one revision of mita-integrity's chain inside the running Alembic migration."""
    _online_only(step)
    _run(_module(step).upgrade)


def downgrade(step: str) -> None:
    """Runs the downgrade of one revision of mita-integrity's chain inside the running Alembic migration."""
    _online_only(step)
    _run(_module(step).downgrade)


def _run(body: Callable[[], None]) -> None:
    """Runs a step in the application's Alembic context: the tool's host installed, a refusal as our error."""
    from alembic import context, op

    from ..migrations.frozen.online_v1 import MigrationRefused
    from .host import install

    install(context.config.attributes, lambda: database_of_bind(op.get_bind()))
    try:
        body()
    except MigrationRefused as exc:
        raise DatabaseStateError(exc.message, exc.hint) from None


def _online_only(step: str) -> None:
    from alembic import context

    if context.is_offline_mode():  # each step reads the live catalog first; there is none to read in --sql mode
        raise DatabaseStateError(f"{step} cannot be rendered as SQL (alembic --sql): it inspects the live database",
                                 "run alembic upgrade against the database")


def _module(step: str) -> ModuleType:
    from alembic.script import ScriptDirectory

    from .command import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    try:
        found = script.get_revision(step)
    except Exception:  # noqa: BLE001 - Alembic raises several kinds for an unknown id
        found = None
    if found is None:
        known = ", ".join(r.revision for r in reversed(list(script.walk_revisions())))
        raise DatabaseStateError(f"mita-integrity's chain has no step '{step}' (it has {known})",
                                 "install the mita-integrity that exported this file")
    return found.module


def database_of_bind(bind: Any) -> Database | None:
    """Gives the database an Alembic connection is connected to (its engine's URL, else DATABASE_URL)."""
    url = getattr(getattr(bind, "engine", None), "url", None)
    if url is not None and (url.host or url.database):
        text = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return Database.from_url(text, origin="the migration's engine")
    env = os.environ.get("DATABASE_URL")
    if env:
        return Database.from_url(env, origin="DATABASE_URL")
    return None
