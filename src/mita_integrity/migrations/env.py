"""Alembic environment: uses the connection mita-integrity hands over, or DATABASE_URL for plain alembic."""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from mita_integrity.database.chain_state import prepare_own_table, version_table_options
from mita_integrity.database.errors import MitaIntegrityError
from mita_integrity.database.models import metadata
from mita_integrity.migration.guards import one_migration_at_a_time, require_above_floor
from mita_integrity.migration.host import install
from mita_integrity.migrations.frozen.online_v1 import MigrationRefused

config = context.config


def _applied(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    """Notes each revision as it completes, so that a failure later can say what was completed and kept."""
    config.attributes.setdefault("applied", []).append(step.up_revision_id)


def _run(connection: Connection) -> None:
    # The chain's state lives in integrity.alembic_version: the application's alembic_version is never written.
    # A caller's open transaction (an atomic stamp) takes the table with it; otherwise it is committed first.
    callers = connection.in_transaction()
    # What the frozen migrations connect and record their clean-up through (migration/host.py).
    install(config.attributes, lambda: _database(connection))
    prepare_own_table(connection)
    if not callers:
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transaction_per_migration=True,
        compare_type=True,
        on_version_apply=_applied,
        **version_table_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def _database(connection: Connection) -> Any:
    """Gives the database being migrated: handed over by mita-integrity or set below, else the connection's URL."""
    from mita_integrity.database.connection import Database
    from mita_integrity.migration.api import database_of_bind

    db = config.attributes.get("database")
    return db if isinstance(db, Database) else database_of_bind(connection)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from mita_integrity.database.connection import Database
    from mita_integrity.migration.command import engine_for

    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("alembic: set DATABASE_URL (or pass -x db=URL) to the MITA database")
    database = Database.from_url(url, origin="DATABASE_URL")
    config.attributes.setdefault("database", database)  # the migrations' clean-up connects through it
    _refuse_below_floor()
    engine = engine_for(database)
    try:
        with one_migration_at_a_time(database, "alembic"), engine.connect() as conn:
            _run(conn)
    except (MitaIntegrityError, MigrationRefused) as exc:
        raise SystemExit(f"alembic: {exc.one_line()}") from None
    finally:
        engine.dispose()


def _refuse_below_floor() -> None:
    """Plain `alembic downgrade base` (or to a revision of the application's chain) is refused like migrate's."""
    cmd = getattr(config.cmd_opts, "cmd", None)
    action = getattr(cmd[0], "__name__", "") if cmd else ""
    if action != "downgrade":
        return
    target = str(context.get_revision_argument() or "")
    try:
        require_above_floor(action, target, None)
    except MitaIntegrityError as exc:
        raise SystemExit(f"alembic: {exc.one_line()}") from None


if context.is_offline_mode():
    raise SystemExit("alembic: offline (--sql) mode is not supported; run against a database")
run_migrations_online()
