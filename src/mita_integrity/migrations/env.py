"""Alembic environment: uses the connection mita-integrity hands over, or DATABASE_URL for plain alembic."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from mita_integrity.migration_state import prepare_own_table, version_table_options
from mita_integrity.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    # The chain's state lives in integrity.alembic_version: the application's alembic_version is never written.
    prepare_own_table(connection)
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transaction_per_migration=True,
        compare_type=True,
        **version_table_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from mita_integrity.connection import Database
    from mita_integrity.migrate import engine_for

    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("alembic: set DATABASE_URL (or pass -x db=URL) to the MITA database")
    database = Database.from_url(url, origin="DATABASE_URL")
    config.attributes.setdefault("database", database)  # the migrations' clean-up connects through it
    engine = engine_for(database)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("alembic: offline (--sql) mode is not supported; run against a database")
run_migrations_online()
