"""What every command shares: the resolved database, the consoles, and masking."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from .. import target
from ..connection import Database
from ..errors import MitaIntegrityError, UsageError

if TYPE_CHECKING:
    from ..project import Project

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
        from .. import project_file

        if config is not None and self.config_option is not None and config != self.config_option:
            raise UsageError(f"--config is given twice: {self.config_option} and {config}", "give one project file")
        if self._project is None:
            self._project = project_file.load(config or self.config_option)
        return self._project

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty()


def database_failure(exc: BaseException) -> MitaIntegrityError | None:
    """Gives the one-line error for a database failure that escaped a command, or None when exc is not one.

    A session the server ended (a restart, a shutdown, a terminated backend, a dropped network) and a
    server that only reads (a standby) are expected: they get one line saying what was kept and what to do.
    """
    import psycopg

    from ..errors import DatabaseStateError, connection_lost, is_connection_lost

    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        first = (str(exc).strip().splitlines() or [""])[0]
        return DatabaseStateError(f"this server only reads (a standby, or default_transaction_read_only is on): "
                                  f"{first}", "point --db at the primary server")
    if is_connection_lost(exc):
        return connection_lost(exc, "the command", "what was committed stays (a fix commits batch by batch, each "
                                                   "with its archive; a migration step by step) and the "
                                                   "transaction in progress was rolled back")
    return None
