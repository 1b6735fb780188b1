"""What a seed is asked for (SeedOptions) and what it did (SeedResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..database.errors import UsageError
from .plan import MAX_DAYS, MAX_TRANSACTIONS, MAX_USERS, MIN_CORRUPT_USERS, SEED_RANGE, TRANSACTIONS_PER_USER_DAY


@dataclass(frozen=True)
class SeedOptions:
    """How much data, from which seed, with or without defects.

    `anchor` is "now" for the generated data (transactions run up to it); by default the start of the
    current UTC hour, so that two seeds with the same options within the hour are identical. Pass it
    explicitly to reproduce a database exactly.
    """

    users: int = 1000
    days: int = 30
    seed: int = 1
    corrupt: bool = False
    replace: bool = False
    anchor: datetime | None = None

    def validated(self) -> SeedOptions:
        """Gives self when every option is in range; raises UsageError naming the first one that is not."""
        _int_in("users", self.users, 1, MAX_USERS)
        _int_in("days", self.days, 1, MAX_DAYS)
        _int_in("seed", self.seed, *SEED_RANGE)
        expected = int(self.users * self.days * TRANSACTIONS_PER_USER_DAY)
        if expected > MAX_TRANSACTIONS:
            raise UsageError(
                f"{self.users:,} users over {self.days:,} days would be about {expected:,} transactions",
                f"the seed makes at most {MAX_TRANSACTIONS:,}: use fewer users or days",
            )
        if self.corrupt and self.users < MIN_CORRUPT_USERS:
            raise UsageError(
                f"--corrupt needs at least {MIN_CORRUPT_USERS} users (got {self.users})",
                "each kind of defect needs users of its own to land on",
            )
        if self.anchor is not None and self.anchor.tzinfo is None:
            raise UsageError("the seed's anchor time must carry a time zone", "use e.g. datetime.now(timezone.utc)")
        return self

    def anchor_utc(self, server_now: datetime) -> datetime:
        """Gives the anchor in UTC: the given one (to the second), else server_now's hour."""
        if self.anchor is not None:
            return self.anchor.astimezone(UTC).replace(microsecond=0)
        return server_now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"--{name} must be a whole number (got {value!r})")
    if not low <= value <= high:
        raise UsageError(f"--{name} must be between {low:,} and {high:,} (got {value:,})")


@dataclass(frozen=True)
class SeedResult:
    """What a seed inserted, and (with defects) how many violations each rule must find.

    `truth` maps rule codes to expected counts; duplicate rules also have "<CODE>.groups". The per-table
    rules (REF010, REF011, SDL001) are summed in `truth` and split in `truth_by_table`.
    """

    rows: dict[str, int]
    truth: dict[str, int]
    truth_by_table: dict[str, dict[str, int]]
    seconds: float
    anchor: datetime
    stage_seconds: dict[str, float] = field(default_factory=dict)
