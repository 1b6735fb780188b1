"""The one family of errors a user can cause; the CLI prints them as one line and exits 3."""

from __future__ import annotations

from typing import Any


class MitaIntegrityError(Exception):
    """An expected failure: what happened, and (optionally) what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """Gives the message and its hint joined into a single line."""
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} — {' '.join(self.hint.split())}"
        return text


class UsageError(MitaIntegrityError):
    """Bad arguments, options or configuration."""


class ConnectionFailed(MitaIntegrityError):
    """The database could not be reached or refused us.

    `refused`: the server answered and turned down what was asked for (the password, the role, the
    database); trying again later will not help, unlike a server that is down, full or starting.
    """

    def __init__(self, message: str, hint: str | None = None, *, refused: bool = False) -> None:
        super().__init__(message, hint)
        self.refused = refused


class DatabaseStateError(MitaIntegrityError):
    """The database is not in a state the command can work with (missing tables, unknown revision…)."""


class EmbeddedServerError(MitaIntegrityError):
    """The embedded PostgreSQL could not be started."""


class ConnectionLost(MitaIntegrityError):
    """The server went away in the middle of a command: a restart, a failover, a terminated session."""


# SQLSTATEs of a session the server ended: admin_shutdown, crash_shutdown, cannot_connect_now,
# idle_session_timeout, idle_in_transaction_session_timeout, and the connection exceptions (class 08).
_LOST_STATES = ("57P01", "57P02", "57P03", "57P05", "25P03")

# SQLSTATEs of a query (or session) a standby's replay cancelled: serialization_failure for most conflicts
# (snapshot, lock, tablespace, buffer pin), database_dropped for a dropped database. A primary uses 40001
# too (a write that lost a race), so the state alone does not tell: the server must be a standby.
RECOVERY_CONFLICT_STATES = ("40001", "57P04")


def is_connection_lost(exc: BaseException, conn: object = None) -> bool:
    """Tells whether exc (a psycopg error) means the session is gone, rather than one statement failed."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return False
    if conn is not None and (getattr(conn, "closed", False) or getattr(conn, "broken", False)):
        return True  # psycopg's own state: libpq reported the connection bad (CONNECTION_BAD)
    state = exc.sqlstate
    if state is None:
        # What the server says carries a SQLSTATE; an error without one comes from the client side: libpq
        # found the socket closed or failing (a crash, a kill, a dropped network or proxy) and psycopg raises
        # it as an OperationalError, with libpq's text only. Its class is all there is to go by.
        return isinstance(exc, psycopg.OperationalError)
    return state in _LOST_STATES or state.startswith("08")


def is_recovery_conflict(exc: BaseException, in_hot_standby: str | None) -> bool:
    """Tells whether exc is a query or session a standby's replay cancelled. `in_hot_standby` is the server's
    own report (libpq's ParameterStatus, PostgreSQL 14 and later) of the connection that failed; None when
    that connection is not at hand, and then the SQLSTATE decides alone."""
    import psycopg

    if not isinstance(exc, psycopg.Error) or exc.sqlstate not in RECOVERY_CONFLICT_STATES:
        return False
    return in_hot_standby != "off"


# Set on an error by database.connection.connect when the connection it was making, which its caller never
# held, reported itself a hot standby.
ON_STANDBY = "mita_integrity_on_standby"


def on_standby(conn: Any) -> bool:
    """Tells whether conn's server reported itself a hot standby (in_hot_standby, PostgreSQL 14 and later; read
    before the connection is closed)."""
    import psycopg

    try:
        return conn is not None and conn.info.parameter_status("in_hot_standby") == "on"
    except psycopg.Error:
        return False


def lost_on_standby(exc: BaseException, conn: Any) -> bool:
    """Tells whether exc is a session lost without a word (no SQLSTATE) on a connection to a hot standby (conn,
    or the one connect() was making): there replay may have ended it."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError) or exc.sqlstate is not None:
        return False
    return bool(getattr(exc, ON_STANDBY, False)) or on_standby(conn)


def replay_refused_start(exc: BaseException) -> bool:
    """Tells whether exc is a connection a standby's replay ended while it started (reading the catalogs to set
    up the session). libpq keeps only the text then (see connection's note), so the server's own words tell,
    as PostgreSQL words them in English."""
    import psycopg

    return (isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
            and "due to conflict with recovery" in str(exc))


def connection_lost(exc: BaseException, doing: str, after: str) -> ConnectionLost:
    """Gives the one-line error for a session lost while `doing`; `after` says what state that left."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if not line.startswith(("DETAIL", "HINT"))), type(exc).__name__)
    detail = "" if reason.startswith("the connection is") else f" ({reason})"  # psycopg's own: says nothing more
    return ConnectionLost(f"lost the connection to the database during {doing}{detail}; {after}",
                          "re-run the command once the server accepts connections again")
