"""The state one seed run carries from stage to stage: cursor, options, clock, counts, expected findings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from .hashing import Hasher
from .options import SeedOptions

DAY = 86400


@dataclass
class TruthBook:
    """The expected count of every rule code, built up as defects are injected."""

    counts: Counter[str] = field(default_factory=Counter)
    by_table: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, code: str, n: int, table: str | None = None) -> None:
        """Adds n expected violations of code (and of code in table, for per-table rules)."""
        self.counts[code] += n
        if table is not None:
            self.by_table.setdefault(code, Counter())[table] += n

    def frozen(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Gives plain dicts of the counts and the per-table counts."""
        return dict(sorted(self.counts.items())), {c: dict(sorted(t.items())) for c, t in self.by_table.items()}


@dataclass
class SeedRun:
    """One seed in progress."""

    cur: psycopg.Cursor
    options: SeedOptions
    anchor: datetime  # UTC, whole seconds
    rows: Counter[str] = field(default_factory=Counter)
    truth: TruthBook = field(default_factory=TruthBook)

    @property
    def h(self) -> Hasher:
        return Hasher(self.options.seed)

    @property
    def now(self) -> int:
        """The anchor as epoch seconds."""
        return int(self.anchor.timestamp())

    @property
    def today(self) -> int:
        """The anchor's UTC day at midnight, as epoch seconds."""
        return self.now - self.now % DAY

    @property
    def bucket(self) -> int:
        """Gives the width (seconds, a power of two) of the time slots that keep a user's spent_at unique.

        A user's n-th transaction lands at second n of a slot, so no two of one user's transactions share
        a second (DUP003 stays exact); the slot's last 32 seconds are left for injected defects.
        """
        most = int(self.options.days * 3.1) + 64
        width = 1024
        while width < most:
            width *= 2
        return width

    def ts(self, epoch_sql: str) -> str:
        """Gives SQL for a timestamptz from SQL epoch seconds."""
        return f"to_timestamp({epoch_sql})"

    def naive(self, epoch_sql: str) -> str:
        """Gives SQL for a UTC wall-clock timestamp (the goals table's type) from SQL epoch seconds."""
        return f"(to_timestamp({epoch_sql}) AT TIME ZONE 'UTC')"

    def day_start(self, days_ago: int) -> datetime:
        """Gives midnight UTC of the day days_ago before the anchor's day."""
        return datetime.fromtimestamp(self.today, self.anchor.tzinfo) - timedelta(days=days_ago)

    def execute(self, statement: str) -> int:
        """Runs one statement (its values are inlined trusted literals: no parameters); gives its row count."""
        self.cur.execute(statement)
        return max(self.cur.rowcount, 0)

    def insert(self, table: str, statement: str) -> int:
        """Runs one INSERT into table; counts and gives its rows."""
        n = self.execute(statement)
        self.rows[table] += n
        return n

    def scalar(self, statement: str) -> int:
        """Gives the first column of the first row of a query, as an int (0 for NULL)."""
        self.cur.execute(statement)
        row = self.cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def per_user(count_sql: str) -> str:
    """Gives a FROM item of `count_sql` rows per user: seed_users s, and j = 1, 2, … within the user.

    `rk` (s.n * 8 + j) numbers the rows for hashing; count_sql may use s.* and must stay below 8.
    """
    return (f"seed_users s CROSS JOIN LATERAL generate_series(1, ({count_sql})::int) AS j(j) "
            "CROSS JOIN LATERAL (SELECT s.n * 8 + j.j AS rk) AS r")
