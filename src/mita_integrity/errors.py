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
