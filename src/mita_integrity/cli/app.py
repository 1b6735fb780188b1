"""What every command shares: the resolved database, the consoles, and masking."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from rich.console import Console

from .. import target
from ..connection import Database

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
    _database: Database | None = field(default=None, repr=False)

    def database(self, name: str | None = None) -> Database:
        """Gives the database to work on (--db, DATABASE_URL, else the embedded server)."""
        if self._database is None:
            self._database = target.resolve(self.db_option, say=note, database=name)
        return self._database

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty()
