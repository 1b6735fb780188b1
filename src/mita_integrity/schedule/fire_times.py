"""When a cron expression fires, as absolute instants: the rule for the days the clocks change.

A cron expression names wall-clock times in a time zone. Each wall-clock time it names is turned into
one instant, and the scheduler compares instants only (never wall-clock times), so a clock change can
neither make a fire time look past (the busy loop of a naive comparison) nor run one twice:

- clocks go back (02:00–02:59 happens twice in Europe/Berlin on the last Sunday of October): a time in
  the repeated hour fires once, at its first occurrence (summer time; PEP 495's fold=0);
- clocks go forward (02:00–02:59 does not happen on the last Sunday of March): a time in the skipped hour
  fires once, shifted forward by the gap (02:30 fires at 03:30 summer time), unless that instant is a fire
  time of its own (then it fires once there).

Instants are aware datetimes in UTC; the expressions are evaluated on naive wall-clock times, which
croniter steps through by pure calendar arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ..database.errors import UsageError

# Longer than any clock change (one hour nearly everywhere, two at most in history): a wall-clock time this
# far before or after an instant's own wall-clock time can map to an instant on the other side of it.
_REACH = timedelta(hours=3)


def parse_cron(expression: str) -> str:
    """Gives the expression when croniter accepts it (five fields); raises UsageError otherwise."""
    text = (expression or "").strip()
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise UsageError(f"--cron {expression!r} is not a cron expression",
                         "five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' for 02:00 daily")
    return text


def parse_zone(name: str) -> ZoneInfo:
    """Gives the IANA time zone; raises UsageError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {name!r} is not a time zone", "use an IANA name such as UTC or Europe/Sofia") \
            from None


def instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """Gives the instant (UTC) a naive wall-clock time fires at, by the rule of the module's docstring."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def next_fire(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """Gives the first fire instant strictly after `after` (an aware datetime), in UTC.

    Wall-clock order and instant order differ around a gap (02:30 fires after 03:10), so the earliest
    instant is taken among the wall-clock times within reach of the first one that qualifies.
    """
    times = croniter(cron, _wall(after, zone) - _REACH)
    best: datetime | None = None
    limit: datetime | None = None
    while True:
        wall = times.get_next(datetime)
        if limit is not None and wall > limit:
            assert best is not None
            return best
        fire = instant(wall, zone)
        if fire > after and (best is None or fire < best):
            best = fire
            limit = limit or wall + _REACH


def last_fire(cron: str, zone: ZoneInfo, at: datetime) -> datetime:
    """Gives the latest fire instant at or before `at` (an aware datetime), in UTC."""
    times = croniter(cron, _wall(at, zone) + _REACH + timedelta(minutes=1))
    best: datetime | None = None
    limit: datetime | None = None
    while True:
        wall = times.get_prev(datetime)
        if limit is not None and wall < limit:
            assert best is not None
            return best
        fire = instant(wall, zone)
        if fire <= at and (best is None or fire > best):
            best = fire
            limit = limit or wall - _REACH
