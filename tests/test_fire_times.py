"""Fire times across clock changes, and the daemon's loop on a controlled clock (no database).

The rule (fire_times.py, docs/deployment.md): a time in the repeated hour fires once, at its first
occurrence; a time in the skipped hour fires once, shifted forward by the gap. The loop never iterates
without time passing: each wait moves the controlled clock forward, and the number of waits is bounded.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mita_integrity.schedule.fire_times import last_fire, next_fire
from mita_integrity.schedule.runner import Clock, ScheduledRun, ScheduleRequest, Stopper, serve

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = BERLIN, fold: int = 0) -> datetime:
    """An aware instant from a wall-clock time in zone ('2026-10-25 02:00')."""
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).astimezone(UTC)


class ControlledClock(Clock):
    """A clock that only moves when the daemon waits; counts the waits and refuses to be spun."""

    def __init__(self, start: datetime, max_waits: int) -> None:
        self.moment = start
        self.waits: list[float] = []
        self.max_waits = max_waits

    def now(self) -> datetime:
        return self.moment

    def wait(self, seconds: float, stop: threading.Event) -> None:
        assert seconds > 0, f"a wait of {seconds} s at {self.moment}: the loop would spin"
        self.waits.append(seconds)
        assert len(self.waits) <= self.max_waits, f"over {self.max_waits} waits: a busy loop"
        self.moment += timedelta(seconds=seconds)


def fires(cron: str, start: datetime, runs: int, *, max_waits: int, zone: str = "Europe/Berlin",
          run_seconds: float = 0.0) -> tuple[list[datetime], ControlledClock]:
    """Runs serve() on the controlled clock for `runs` runs; gives the slots it ran and the clock."""
    clock = ControlledClock(start, max_waits)
    ran: list[datetime] = []

    def run(slot: datetime) -> ScheduledRun:
        assert clock.now() >= slot, "ran before its time"
        ran.append(slot)
        clock.moment += timedelta(seconds=run_seconds)
        return ScheduledRun(slot, skipped="test")

    done = serve(None, ScheduleRequest(cron=cron, timezone=zone), lambda line: None, Stopper(),  # type: ignore[arg-type]
                 runs=runs, clock=clock, run=run)
    assert done == runs
    return ran, clock


def test_the_night_clocks_go_back_fires_two_am_once_without_spinning() -> None:
    """The issue's night: 0 2 * * * in Europe/Berlin, started at 02:00:05 CEST on 2026-10-25, just after
    that day's run. The next run is 02:00 CET the next day (not 02:00 CET an hour later, which is the
    repeated hour's second 02:00), and the wait there takes about 25 h / 60 s steps, never a spin."""
    ran, clock = fires("0 2 * * *", at("2026-10-25 02:00:05"), 2, max_waits=2 * 26 * 60 + 10)
    assert ran == [at("2026-10-26 02:00"), at("2026-10-27 02:00")]
    assert ran[0] - at("2026-10-25 02:00:05") == timedelta(hours=25, seconds=-5)
    assert min(clock.waits) > 0 and len(clock.waits) <= 2 * 25 * 60 + 2 * 60


def test_hourly_across_the_repeated_hour_fires_each_wall_time_once() -> None:
    ran, _ = fires("0 * * * *", at("2026-10-25 00:30"), 4, max_waits=5 * 60 + 10)
    assert [r.astimezone(BERLIN).strftime("%H:%M%z") for r in ran] == ["01:00+0200", "02:00+0200", "03:00+0100",
                                                                       "04:00+0100"]
    assert ran[2] - ran[1] == timedelta(hours=2)  # 02:00 CET is the repeated 02:00: not a second run


def test_a_time_in_the_skipped_hour_fires_once_shifted_by_the_gap() -> None:
    ran, _ = fires("30 2 * * *", at("2026-03-28 12:00"), 2, max_waits=2 * 25 * 60)
    assert ran == [at("2026-03-29 03:30"), at("2026-03-30 02:30")]


def test_hourly_across_the_skipped_hour_fires_three_oclock_once() -> None:
    ran, _ = fires("0 * * * *", at("2026-03-29 00:30"), 3, max_waits=3 * 61)
    assert [r.astimezone(BERLIN).strftime("%H:%M%z") for r in ran] == ["01:00+0100", "03:00+0200", "04:00+0200"]


def test_every_fifteen_minutes_across_both_changes_never_repeats_an_instant() -> None:
    for start in (at("2026-10-25 01:00"), at("2026-03-29 01:00")):
        ran, _ = fires("*/15 * * * *", start, 12, max_waits=5 * 60)
        assert len(set(ran)) == len(ran) and ran == sorted(ran)
        gaps = [b - a for a, b in zip(ran, ran[1:], strict=False)]
        assert all(timedelta(minutes=15) <= gap <= timedelta(hours=1, minutes=15) for gap in gaps)


def test_a_run_that_overruns_skips_the_slots_it_missed_instead_of_bursting() -> None:
    ran, _ = fires("* * * * *", at("2026-06-01 12:00:30"), 3, max_waits=10, zone="UTC", run_seconds=150)
    assert [r.strftime("%H:%M") for r in ran] == ["10:01", "10:04", "10:07"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_next_and_last_fire_agree_over_a_year(zone: str) -> None:
    """Walking a year of 02:30 daily (a time some of these zones skip): one fire per day, each the last
    fire at its own instant, strictly increasing."""
    tz = ZoneInfo(zone)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    seen = []
    for _ in range(366):
        moment = next_fire("30 2 * * *", tz, moment)
        assert last_fire("30 2 * * *", tz, moment) == moment
        assert last_fire("30 2 * * *", tz, moment - timedelta(seconds=1)) < moment
        seen.append(moment.astimezone(tz).date())
    assert len(set(seen)) == 366  # one fire per local day


def test_the_slot_of_a_run_is_the_instant_it_fired_at() -> None:
    request = ScheduleRequest(cron="0 2 * * *", timezone="Europe/Berlin")
    assert request.slot(at("2026-10-25 02:59", fold=1)) == at("2026-10-25 02:00")  # the repeated hour
    assert request.slot(at("2026-10-26 02:00")) == at("2026-10-26 02:00")
