"""The one family of errors a user can cause; the CLI prints them as one line and exits 3."""

from __future__ import annotations


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
    """The database could not be reached or refused us."""


class DatabaseStateError(MitaIntegrityError):
    """The database is not in a state the command can work with (missing tables, unknown revision…)."""


class EmbeddedServerError(MitaIntegrityError):
    """The embedded PostgreSQL could not be started."""


class ConnectionLost(MitaIntegrityError):
    """The server went away in the middle of a command: a restart, a failover, a terminated session."""


# SQLSTATEs of a session the server ended: admin_shutdown, crash_shutdown, cannot_connect_now, and the
# connection exceptions (class 08). A client-side failure (socket closed) has no SQLSTATE at all.
_LOST_STATES = ("57P01", "57P02", "57P03")


def is_connection_lost(exc: BaseException, conn: object = None) -> bool:
    """Tells whether exc (a psycopg error) means the session is gone, rather than one statement failed."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return False
    if conn is not None and (getattr(conn, "closed", False) or getattr(conn, "broken", False)):
        return True
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state in _LOST_STATES or state.startswith("08")


def connection_lost(exc: BaseException, doing: str, after: str) -> ConnectionLost:
    """Gives the one-line error for a session lost while `doing`; `after` says what state that left."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if not line.startswith(("DETAIL", "HINT"))), type(exc).__name__)
    detail = "" if reason.startswith("the connection is") else f" ({reason})"  # psycopg's own: says nothing more
    return ConnectionLost(f"lost the connection to the database during {doing}{detail}; {after}",
                          "re-run the command once the server accepts connections again")
