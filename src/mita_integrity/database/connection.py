"""Connections to PostgreSQL that are safe behind PgBouncer and speak in one clear line when they fail."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .errors import (
    ON_STANDBY,
    ConnectionFailed,
    UsageError,
    is_recovery_conflict,
    lost_on_standby,
    replay_refused_start,
)
from .urls import ParsedUrl, mask_secrets, parse_url

APPLICATION_NAME = "mita-integrity"
DEFAULT_CONNECT_TIMEOUT = "10"
POOL_MODE_ENV = "MITA_POOL_MODE"  # transaction | session | direct: overrides the detection (docs/poolers.md)
SUPABASE_TRANSACTION_PORT = "6543"
# What every session of the tool runs with, whatever the role's or database's defaults:
# - search_path: public alone. The tool's SQL names the MITA tables unqualified and reads its schema facts
#   from public, so a schema named after the user ("$user", first in the default path) must never shadow
#   them; pg_catalog is still searched first (implicitly), and unqualified objects a migration creates still
#   go to public (a path that lists pg_catalog first would make pg_catalog the creation schema).
# - extra_float_digits 3 (shortest exact output on 12 and later), IntervalStyle postgres, bytea_output hex:
#   the archive's row images (to_jsonb) and undo's comparisons with them are exact whatever the server's
#   defaults (under extra_float_digits 0, 0.30000000000000004 would be archived as 0.3).
SESSION_SETTINGS: tuple[tuple[str, str], ...] = (
    ("search_path", "public"),
    ("extra_float_digits", "3"),
    ("IntervalStyle", "postgres"),
    ("bytea_output", "hex"),
    ("TimeZone", "UTC"),
)
# What the check's own statements run under: the system catalog alone. Naming pg_catalog first is not enough:
# PostgreSQL resolves a function or operator among every schema on the path and picks the best-matching
# signature, so `public.lower(varchar)` or `public.<(numeric, integer)` beats pg_catalog's lower(text) and
# <(numeric, numeric) wherever it is visible. The statements name their tables public."…"; pg_temp last keeps a
# temporary table from standing in for a catalog (temporary functions are never found unqualified).
CATALOG_SEARCH_PATH = "pg_catalog, pg_temp"


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
        return Database(replace(self.parsed, params=params), self.origin)

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
    except psycopg.Error as exc:  # OperationalError mostly; another one from a server not PostgreSQL answering oddly
        if replay_refused_start(exc):
            raise  # a standby's replay ended the session as it started: the caller may try again (check does)
        raise explain_connect_error(db, exc) from None
    try:
        # Session settings, and again per transaction (SET LOCAL, `transaction`) where a transaction pooler may
        # switch backends between transactions and ignores startup options.
        with conn.cursor() as cur:
            pin_settings(cur)
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        standby = None if conn.closed else conn.info.parameter_status("in_hot_standby")  # read before close()
        lost = lost_on_standby(exc, conn)
        conn.close()
        if is_recovery_conflict(exc, standby) or lost:
            setattr(exc, ON_STANDBY, True)  # the caller never held this connection (see lost_on_standby)
            raise  # a standby's replay ended the session: the command's own refusal or advice (cli.app) says so
        raise explain_connect_error(db, exc) from None
    return conn


def pin_settings(cur: psycopg.Cursor, *, local: bool = False) -> None:
    """Applies SESSION_SETTINGS to the session, or (local) to the current transaction only."""
    scope = "SET LOCAL" if local else "SET"
    statement = "; ".join(f"{scope} {name} = {sql.Literal(value).as_string(None)}" for name, value in SESSION_SETTINGS)
    cur.execute(statement.encode())


# A connection that fails while it is made carries no SQLSTATE: libpq keeps only the text of the server's
# ErrorResponse during the startup phase (PQconnectPoll leaves no PGresult to read fields from), and psycopg's
# error for it has sqlstate None and an empty diag. What libpq does expose is used first: the timeout
# (psycopg's ConnectionTimeout) and a password the server asked for and was not given
# (PQconnectionNeedsPassword). The rest is told by text, each pattern as narrow as it can be:
# - the server's own FATAL messages, as PostgreSQL words them (a server whose lc_messages is not English
#   words them otherwise, and gets the general hint with its own reason: nothing is lost but the advice);
# - libpq's messages for what happened before any server answered (a refused port is the C library's
#   strerror(ECONNREFUSED), no errno reaches Python), and psycopg's for a host name it could not resolve.
_SERVER_REFUSALS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r'\bpassword authentication failed for user "'), "password",
     "check the user name and password in the URL (URL-encode special characters)"),
    (re.compile(r'\bdatabase "[^"]*" does not exist'), "database", "check the database name at the end of the URL"),
    (re.compile(r'\brole "[^"]*" does not exist'), "role", "check the user name in the URL"),
)
_NOT_POSTGRES = re.compile("|".join((  # libpq's words for a peer that does not speak PostgreSQL's protocol
    "expected authentication request from server, but received", r"received invalid response to (?:SSL|GSSAPI) "
    "negotiation", "unexpected message from server during startup", "server closed the connection unexpectedly",
    r"invalid (?:response|message) ", "lost synchronization with server")))


def explain_connect_error(db: Database, exc: BaseException) -> ConnectionFailed:
    """Gives the one-line error, with a hint, for a failed connection, with every secret masked."""
    raw = str(exc).strip()
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    # libpq prefixes each attempt with 'connection to server at "h" (ip), port p failed:'.
    reasons = [re.sub(r'^(connection failed:\s*)?(connection to server (at|on) .*? failed:\s*)?', "", line)
               for line in lines]
    reason = next((r for r in reasons if r), raw or type(exc).__name__)
    target = _target(db)
    pgconn = getattr(exc, "pgconn", None)
    refused = False
    # psycopg before 3.3.3 drops pgconn when it joins the errors of several attempts (a host name with two
    # addresses): libpq's own words for a missing password then stand in for PQconnectionNeedsPassword.
    needs_password = pgconn.needs_password if pgconn is not None else "fe_sendauth: no password supplied" in raw
    refusal = next(((kind, hint) for pattern, kind, hint in _SERVER_REFUSALS if pattern.search(raw)), None)
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        hint = "the host did not answer: check the host name, port and firewall"
        msg = f"{target}: connection timed out"
    elif needs_password or (refusal is not None and refusal[0] == "password"):
        hint, refused = "check the user name and password in the URL (URL-encode special characters)", True
        msg = f"{target}: password authentication failed for user {db.parsed.params.get('user', '?')!r}"
    elif refusal is not None and refusal[0] == "database":
        hint, refused = refusal[1], True
        msg = f"{target}: database {db.dbname!r} does not exist"
    elif refusal is not None:
        hint, refused = refusal[1], True
        msg = f"{target}: {reason}"
    elif "Connection refused" in raw:
        hint = "is PostgreSQL running there, and is the port right?"
        msg = f"{target}: connection refused"
    elif "failed to resolve host " in raw or "could not translate host name" in raw:
        hint = "check the host name in the URL"
        msg = f"{target}: unknown host"
    elif "server does not support SSL" in raw:
        hint = "the server has no TLS: drop sslmode=require from the URL"
        msg = f"{target}: {reason}"
    elif _NOT_POSTGRES.search(raw):
        hint = "something other than PostgreSQL answers on that port: check the port"
        msg = f"{target}: not a PostgreSQL server ({reason})"
    else:
        hint = "check the URL, and that the server accepts connections from here"
        msg = f"{target}: {reason}"
    secrets = (db.parsed.password,)
    return ConnectionFailed(mask_secrets(msg, *secrets), mask_secrets(hint, *secrets), refused=refused)


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
        pin_settings(cur, local=True)
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


@dataclass(frozen=True)
class Pooling:
    """Whether a transaction pooler may stand between us and the server, and what told us so."""

    transaction: bool
    reason: str


def detect_pooling(db: Database) -> Pooling:
    """Tells whether db goes through a transaction-mode pooler (docs/poolers.md: "How it is detected").

    In order: MITA_POOL_MODE when set; the URL's pgbouncer=true; port 6543 (Supabase's transaction
    pooler); else one connection compares the process id the connection was given at startup with
    pg_backend_pid(): a pooler hands out its own, so a difference means one is in between, in a mode a
    client cannot see (counted as transaction pooling; MITA_POOL_MODE=session says otherwise).
    """
    declared = os.environ.get(POOL_MODE_ENV, "").strip().lower()
    if declared in {"session", "direct"}:
        return Pooling(False, f"{POOL_MODE_ENV}={declared}")
    if declared == "transaction":
        return Pooling(True, f"{POOL_MODE_ENV}=transaction")
    if declared:
        raise UsageError(f"{POOL_MODE_ENV}={declared!r} is not a pool mode", "use transaction, session or direct")
    if db.parsed.pgbouncer:
        return Pooling(True, "the URL says pgbouncer=true")
    if SUPABASE_TRANSACTION_PORT in db.parsed.params.get("port", "").split(","):
        return Pooling(True, f"port {SUPABASE_TRANSACTION_PORT} is Supabase's transaction pooler")
    with connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        given = conn.info.backend_pid
    if row is None or row[0] != given:
        return Pooling(True, "a pooler answers there (the server process is not the one the connection was given)")
    return Pooling(False, "a direct connection")


def require_session(db: Database, command: str, step: str) -> None:
    """Raises UsageError, before anything is done, when a step that needs a session meets a transaction pooler."""
    pooling = detect_pooling(db)
    if pooling.transaction:
        raise UsageError(
            f"{command} needs a direct or session-mode connection: {step}, which a transaction pooler cannot "
            f"carry ({pooling.reason}); nothing was changed",
            f"use the direct URL (Supabase: db.<ref>.supabase.co:5432 or the session pooler's port 5432), or set "
            f"{POOL_MODE_ENV}=session if this pooler is in session mode; see docs/poolers.md")
