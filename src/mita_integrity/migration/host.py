"""What mita-integrity hands a running migration: the database to connect to and the record of its clean-up runs.

The migrations' own code is frozen (migrations/frozen/); how they reach the database and where a clean-up
run is recorded are the tool's of today: the versioned `integrity` schema (store.py), the connection
settings (connection.py). env.py and migration_api put a MigrationHost into the Alembic config's attributes
under kit_v1.HOST before any revision runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from .. import __version__
from ..database.connection import Database, connect
from ..database.errors import DatabaseStateError
from ..migrations.frozen.kit_v1 import HOST
from ..runs import store


@dataclass(frozen=True)
class MigrationHost:
    """The kit_v1.Host of mita-integrity: connections through `connect`, runs through `store`."""

    database: Callable[[], Database | None]

    def _db(self) -> Database:
        db = self.database()
        if db is None:
            raise DatabaseStateError("the migration was started without a database to clean up through",
                                     "run it with mita-integrity migrate, or alembic with DATABASE_URL set")
        return db

    def connect(self) -> psycopg.Connection[Any]:
        return connect(self._db())

    def start_run(self, conn: psycopg.Connection[Any], options: dict[str, Any]) -> str:
        store.ensure(conn)
        return str(store.start_run(conn, "fix", options, __version__))

    def finish_run(self, conn: psycopg.Connection[Any], run_id: str, status: str, summary: dict[str, Any]) -> None:
        store.finish_run(conn, uuid.UUID(run_id), status, summary)


def install(attributes: dict[str, Any], database: Callable[[], Database | None]) -> None:
    """Puts a MigrationHost into an Alembic config's attributes (one already there is kept)."""
    attributes.setdefault(HOST, MigrationHost(database))
