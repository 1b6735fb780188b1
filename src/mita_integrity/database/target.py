"""Which database a command works on: --db, else DATABASE_URL, else the embedded PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable

import psycopg
from psycopg import sql

from . import embedded
from .connection import Database, connect
from .errors import MitaIntegrityError, UsageError


def resolve(db_option: str | None, *, say: Callable[[str], None], database: str | None = None) -> Database:
    """Gives the database to work on; starts the embedded server when no URL is configured."""
    if db_option is not None:
        return Database.from_url(db_option, origin="--db")
    env_url = os.environ.get("DATABASE_URL")
    if env_url is not None:
        # Set but empty is a mistake (a CI secret that did not arrive), never a reason to use the embedded server.
        if not env_url.strip():
            raise UsageError("DATABASE_URL is set but empty",
                             "set it to the database's URL, pass --db URL, or unset it to use the embedded PostgreSQL")
        db = Database.from_url(env_url, origin="DATABASE_URL")
        say(f"using {db.display} from DATABASE_URL (--db URL overrides it)")
        return db
    return embedded_database(say=say, database=database or embedded.EMBEDDED_DATABASE)


def embedded_database(*, say: Callable[[str], None], database: str) -> Database:
    """Gives a database on the embedded server (creating the database if missing), saying so in one line."""
    uri = embedded.start()
    server = Database.from_url(uri, origin="embedded").with_dbname("postgres")
    with connect(server, autocommit=True) as conn:
        version = conn.info.server_version
        ensure_database(conn, database)
    major, minor = version // 10000, version % 10000
    say(
        f"using the embedded PostgreSQL {major}.{minor} (data in {embedded.home()}), database {database}; "
        "neither --db nor DATABASE_URL is set (either selects another server)"
    )
    return server.with_dbname(database)


def ensure_database(admin: psycopg.Connection, name: str) -> bool:
    """Creates the database when it does not exist; gives True when it was created."""
    row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if row:
        return False
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        raise MitaIntegrityError(
            f"cannot create the database {name}: permission denied",
            "create it yourself, or connect as a role with CREATEDB",
        ) from None
    return True


def recreate_database(admin: psycopg.Connection, name: str) -> None:
    """Drops (disconnecting its sessions) and creates the database."""
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        raise MitaIntegrityError(
            f"cannot drop the database {name}: permission denied",
            "drop it yourself, or connect as its owner",
        ) from None
    ensure_database(admin, name)
