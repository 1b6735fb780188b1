"""What every command shares: the resolved database, the consoles, and masking."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ..database import target
from ..database.connection import Database
from ..database.errors import MitaIntegrityError, UsageError

if TYPE_CHECKING:
    from ..check.project import Project

console = Console(highlight=False, soft_wrap=True)
_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def err(line: str) -> None:
    """Prints one line on stderr (no markup interpretation)."""
    _stderr.print(line, markup=False)


def note(line: str) -> None:
    """Prints an informational line on stderr (keeps stdout clean for reports)."""
    _stderr.print(line, markup=False, style="dim")


@dataclass
class App:
    """The global options and the database they select, resolved once and only when needed."""

    db_option: str | None
    debug: bool
    config_option: Path | None = None  # the global --config FILE: the project file
    _database: Database | None = field(default=None, repr=False)
    _project: Project | None = field(default=None, repr=False)

    def database(self, name: str | None = None) -> Database:
        """Gives the database to work on (--db, DATABASE_URL, else the embedded server)."""
        if self._database is None:
            self._database = target.resolve(self.db_option, say=note, database=name)
        return self._database

    def project(self, config: Path | None = None) -> Project:
        """Gives the project file's settings: --config FILE, else the file found from the working directory up.

        `config` is a command's own --config (check and schedule had one for alerts before the global
        option existed); it names the same project file, so two different files are an error.
        """
        from . import project_file

        if config is not None and self.config_option is not None and config != self.config_option:
            raise UsageError(f"--config is given twice: {self.config_option} and {config}", "give one project file")
        if self._project is None:
            self._project = project_file.load(config or self.config_option)
        return self._project

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty()


def database_failure(exc: BaseException, command: str = "the command") -> MitaIntegrityError | None:
    """Gives the one-line error for a database failure that escaped a command, or None when exc is not one.

    A session the server ended (a restart, a shutdown, a terminated backend, a dropped network), a server
    that only reads (a standby) and a query a standby's replay cancelled (a recovery conflict, which only a
    standby has) are expected: they get one line saying what was kept and what to do. `command` names what
    ran ("migrate upgrade head", "fix --apply"); a command that writes gets the refusal it would have had.
    """
    import psycopg

    from ..database.errors import DatabaseStateError, connection_lost, is_connection_lost

    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return DatabaseStateError(f"this server only reads (a standby, or default_transaction_read_only is on): "
                                  f"{first}", "point --db at the primary server")
    if isinstance(exc, psycopg.Error) and "conflict with recovery" in first:
        if writes(command):
            return DatabaseStateError(f"this server only reads (a standby: replay cancelled the first query, "
                                      f"{first}): {command} needs to write; nothing was changed",
                                      "point --db at the primary server")
        return DatabaseStateError(f"replay on this standby cancelled {command} ({first}); nothing was changed",
                                  "re-run it, or point --db at the primary server")
    if is_connection_lost(exc):
        return connection_lost(exc, "the command", "what was committed stays (a fix commits batch by batch, each "
                                                   "with its archive; a migration step by step) and the "
                                                   "transaction in progress was rolled back")
    return None


def writes(command: str) -> bool:
    """Tells whether a command line (its words, as `command_words` gives them) writes to the database."""
    words = command.split()
    if not words:
        return False
    if words[0] == "migrate":
        return len(words) > 1 and words[1] in ("upgrade", "downgrade", "stamp", "validate")
    if words[0] in ("fix", "check"):
        return any(w in ("--apply", "--record") for w in words)
    return words[0] in ("undo", "seed", "demo", "schedule")


def command_words(args: list[str]) -> str:
    """Gives the command and its words that say whether it writes ("migrate upgrade head", "fix --apply")."""
    rest = list(args)
    while rest and rest[0].startswith("-"):  # the global options, some with a value
        option = rest.pop(0)
        if option in ("--db", "--config") and rest:
            rest.pop(0)
    if not rest:
        return "the command"
    name, tail = rest[0], rest[1:]
    if name == "migrate":
        return " ".join([name, *[w for w in tail if not w.startswith("-")][:2]])
    return " ".join([name, *[w for w in tail if w in ("--apply", "--record", "--partial")]])
