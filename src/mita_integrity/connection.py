"""Connections to PostgreSQL that are safe behind PgBouncer and speak in one clear line when they fail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .errors import ConnectionFailed
from .urls import ParsedUrl, mask_secrets, parse_url

APPLICATION_NAME = "mita-integrity"
DEFAULT_CONNECT_TIMEOUT = "10"


@dataclass(frozen=True)
class Database:
    """Where to connect: the libpq parameters and how to show them."""

    parsed: ParsedUrl
    origin: str  # "--db", "DATABASE_URL", "embedded", "test"

    @classmethod
    def from_url(cls, url: str, origin: str = "--db") -> Database:
        return cls(parse_url(url), origin)

    @property
    def display(self) -> str:
        return self.parsed.display()

    @property
    def dbname(self) -> str:
        return self.parsed.params.get("dbname") or self.parsed.params.get("user") or "postgres"

    def with_dbname(self, dbname: str) -> Database:
        params = dict(self.parsed.params, dbname=dbname)
        return Database(ParsedUrl(params=params, dropped=self.parsed.dropped), self.origin)

    def connect_kwargs(self) -> dict[str, str]:
        """Gives the keyword arguments for psycopg.connect (libpq parameters plus our defaults)."""
        kwargs = dict(self.parsed.params)
        kwargs.setdefault("application_name", APPLICATION_NAME)
        kwargs.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        return kwargs

    def sqlalchemy_url(self) -> str:
        """Gives a URL for SQLAlchemy that carries no parameters (they come from a creator)."""
        return "postgresql+psycopg://"


def connect(db: Database, *, autocommit: bool = False) -> psycopg.Connection:
    """Gives an open connection: no server-side prepared statements, TimeZone UTC, our application name."""
    try:
        conn = psycopg.connect(make_conninfo(**db.connect_kwargs()), autocommit=autocommit, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(*explain_connect_error(db, exc)) from None
    except psycopg.Error as exc:  # e.g. a server that is not PostgreSQL answering oddly
        raise ConnectionFailed(*explain_connect_error(db, exc)) from None
    try:
        # A session setting, and again per transaction (SET LOCAL) where a pooler may switch backends.
        with conn.cursor() as cur:
            cur.execute("SET TimeZone TO 'UTC'")
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise ConnectionFailed(*explain_connect_error(db, exc)) from None
    return conn


def explain_connect_error(db: Database, exc: BaseException) -> tuple[str, str]:
    """Gives a one-line message and a hint for a failed connection, with every secret masked."""
    raw = str(exc).strip()
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    # libpq prefixes each attempt with 'connection to server at "h" (ip), port p failed:'.
    reasons = [re.sub(r'^(connection failed:\s*)?(connection to server (at|on) .*? failed:\s*)?', "", line)
               for line in lines]
    reason = next((r for r in reasons if r), raw or type(exc).__name__)
    target = _target(db)
    low = raw.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        hint = "check the user name and password in the URL (URL-encode special characters)"
        msg = f"{target}: password authentication failed for user {db.parsed.params.get('user', '?')!r}"
    elif "does not exist" in low and "database" in low:
        hint = "check the database name at the end of the URL"
        msg = f"{target}: database {db.dbname!r} does not exist"
    elif "role" in low and "does not exist" in low:
        hint = "check the user name in the URL"
        msg = f"{target}: {reason}"
    elif "connection refused" in low:
        hint = "is PostgreSQL running there, and is the port right?"
        msg = f"{target}: connection refused"
    elif "timeout expired" in low or "timed out" in low:
        hint = "the host did not answer: check the host name, port and firewall"
        msg = f"{target}: connection timed out"
    elif "could not translate host name" in low or "name or service not known" in low:
        hint = "check the host name in the URL"
        msg = f"{target}: unknown host"
    elif "ssl" in low and ("not support" in low or "server does not support" in low):
        hint = "the server has no TLS: drop sslmode=require from the URL"
        msg = f"{target}: {reason}"
    elif any(s in low for s in ("invalid response", "server closed the connection", "received invalid",
                                "expected authentication request",
                                "unexpected message", "lost synchronization", "bad response")):
        hint = "something other than PostgreSQL answers on that port: check the port"
        msg = f"{target}: not a PostgreSQL server ({reason})"
    else:
        hint = "check the URL, and that the server accepts connections from here"
        msg = f"{target}: {reason}"
    secrets = (db.parsed.password,)
    return mask_secrets(msg, *secrets), mask_secrets(hint, *secrets)


def _target(db: Database) -> str:
    return f"cannot connect to {db.display}"


@contextmanager
def transaction(
    conn: psycopg.Connection,
    *,
    read_only: bool = False,
    repeatable_read: bool = False,
    statement_timeout_ms: int | None = None,
    lock_timeout_ms: int | None = None,
) -> Iterator[psycopg.Cursor]:
    """Gives a cursor inside one transaction whose settings are all SET LOCAL (pooler-safe)."""
    if conn.autocommit:
        raise RuntimeError("transaction() needs a connection that is not in autocommit mode")
    with conn.transaction(), conn.cursor() as cur:
        mode = []
        if repeatable_read:
            mode.append("ISOLATION LEVEL REPEATABLE READ")
        if read_only:
            mode.append("READ ONLY")
        if mode:
            cur.execute(sql.SQL("SET TRANSACTION " + ", ".join(mode)))
        cur.execute("SET LOCAL TimeZone TO 'UTC'")
        if statement_timeout_ms is not None:
            cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(str(statement_timeout_ms))))
        if lock_timeout_ms is not None:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(str(lock_timeout_ms))))
        yield cur


def server_version(conn: psycopg.Connection) -> str:
    """Gives the server's version as PostgreSQL reports it (e.g. '16.2')."""
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        row = cur.fetchone()
    return str(row[0]).split()[0] if row else "unknown"
