"""The day a transaction belongs to (rules/dayboundary.py) and BUD001 under both day boundaries.

Sofia is UTC+2 in winter and UTC+3 in summer (2026-03-29 03:00 -> 04:00, 2026-10-25 04:00 -> 03:00); New York
is UTC-5 / UTC-4 (2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00). Each scenario books one transaction
for two users of the same zone: user A's plan row holds the local day, user B's the UTC day. Where the two
days differ, exactly one of them is wrong under each boundary, by two keys (a plan row with spending that
did not happen that day, and spending with no plan row).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from mita_integrity.check.rules.dayboundary import (
    check_boundary,
    plan_day_sql,
    transaction_day_sql,
    user_zones_sql,
    valid_zone_sql,
)
from mita_integrity.check.run import CheckRequest, options_for, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.errors import UsageError

from .conftest import PgServer

USER_A = "0000000a-0000-0000-0000-000000000001"  # plan row on the local day
USER_B = "0000000b-0000-0000-0000-000000000001"  # plan row on the UTC day
PLAN_A = "3000000a-0000-0000-0000-000000000001"
PLAN_B = "3000000b-0000-0000-0000-000000000001"
DST_WINDOW = 400  # budget days that reach back from 2026-11-25 past 2026-03-08


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """A transaction at `instant` by a user in `zone`, and the days it belongs to under each boundary."""

    name: str
    zone: str | None
    instant: datetime
    local_day: date
    utc_day: date
    budget_days: int = DST_WINDOW

    @property
    def days_differ(self) -> bool:
        return self.local_day != self.utc_day


D = date.fromisoformat
SCENARIOS = [
    Scenario("sofia-spring-before-change", "Europe/Sofia", utc("2026-03-28 22:30"), D("2026-03-29"), D("2026-03-28")),
    Scenario("sofia-spring-after-change", "Europe/Sofia", utc("2026-03-29 21:30"), D("2026-03-30"), D("2026-03-29")),
    Scenario("sofia-spring-change-night", "Europe/Sofia", utc("2026-03-29 00:59:59"), D("2026-03-29"),
             D("2026-03-29")),
    Scenario("sofia-autumn-before-change", "Europe/Sofia", utc("2026-10-24 21:30"), D("2026-10-25"), D("2026-10-24")),
    Scenario("sofia-autumn-after-change", "Europe/Sofia", utc("2026-10-25 21:30"), D("2026-10-25"), D("2026-10-25")),
    Scenario("sofia-autumn-repeated-hour", "Europe/Sofia", utc("2026-10-25 01:30"), D("2026-10-25"), D("2026-10-25")),
    Scenario("new-york-spring-before-change", "America/New_York", utc("2026-03-08 04:30"), D("2026-03-07"),
             D("2026-03-08")),
    Scenario("new-york-spring-after-change", "America/New_York", utc("2026-03-09 03:30"), D("2026-03-08"),
             D("2026-03-09")),
    Scenario("new-york-spring-after-change-0030", "America/New_York", utc("2026-03-09 04:30"), D("2026-03-09"),
             D("2026-03-09")),
    Scenario("new-york-autumn-before-change", "America/New_York", utc("2026-11-01 03:30"), D("2026-10-31"),
             D("2026-11-01")),
    Scenario("new-york-autumn-after-change", "America/New_York", utc("2026-11-02 04:30"), D("2026-11-01"),
             D("2026-11-02")),
    Scenario("null-zone-is-utc", None, utc("2026-11-20 23:30"), D("2026-11-20"), D("2026-11-20")),
    Scenario("invalid-zone-is-utc", "Mars/Olympus", utc("2026-11-20 23:30"), D("2026-11-20"), D("2026-11-20")),
    Scenario("empty-zone-is-utc", "", utc("2026-11-20 00:30"), D("2026-11-20"), D("2026-11-20")),
]


def _near_midnight_now() -> list[Scenario]:
    """Gives scenarios three days ago, inside the default 30-day window (no fixed dates to go stale)."""
    day = datetime.now(UTC).date() - timedelta(days=3)
    midnight = datetime.combine(day, time(0), tzinfo=UTC)
    out = []
    for name, zone, offset in (("sofia-recent-2230z", "Europe/Sofia", timedelta(hours=22, minutes=30)),
                               ("new-york-recent-0330z", "America/New_York", timedelta(hours=3, minutes=30)),
                               ("sofia-recent-1200z", "Europe/Sofia", timedelta(hours=12))):
        instant = midnight + offset
        out.append(Scenario(name, zone, instant, instant.astimezone(ZoneInfo(zone)).date(), day, 30))
    return out


ALL_SCENARIOS = SCENARIOS + _near_midnight_now()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenarios_agree_with_zoneinfo(scenario: Scenario) -> None:
    """The hand-written local days are what the tz database says (a check of the test's own data)."""
    zone = ZoneInfo(scenario.zone) if scenario.zone in ("Europe/Sofia", "America/New_York") else UTC
    assert scenario.instant.astimezone(zone).date() == scenario.local_day
    assert scenario.instant.date() == scenario.utc_day


def _book(db: Database, scenario: Scenario) -> None:
    with connect(db) as conn:
        for user, plan, day in ((USER_A, PLAN_A, scenario.local_day), (USER_B, PLAN_B, scenario.utc_day)):
            conn.execute("INSERT INTO users (id, email, password_hash, timezone) VALUES (%s, %s, 'h', %s)",
                         (user, f"{user}@example.com", scenario.zone))
            conn.execute("INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                         "VALUES (gen_random_uuid(), %s, 'food', 12.50, %s)", (user, scenario.instant))
            conn.execute("INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                         "VALUES (%s, %s, %s, 'food', 20, 12.50)",
                         (plan, user, datetime.combine(day, time(0), tzinfo=UTC)))


def _bud001(db: Database, boundary: str, budget_days: int) -> tuple[int, tuple[str, ...]]:
    report = run_check(db, CheckRequest(select=["BUD001"], day_boundary=boundary, budget_days=budget_days))
    (result,) = [r for r in report.results if r.code == "BUD001"]
    assert result.status.value in ("pass", "fail"), result.reason
    return result.count, result.sample


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=lambda s: s.name)
def test_bud001_under_each_boundary(baseline_db: Database, scenario: Scenario) -> None:
    _book(baseline_db, scenario)
    wrong = 2 if scenario.days_differ else 0

    count, sample = _bud001(baseline_db, "utc", scenario.budget_days)
    assert count == wrong, f"utc: {sample}"
    if wrong:  # user A's local-day row is the wrong one under the UTC boundary
        assert PLAN_A in sample and any(USER_A in key and str(scenario.utc_day) in key for key in sample), sample

    count, sample = _bud001(baseline_db, "user-timezone", scenario.budget_days)
    assert count == wrong, f"user-timezone: {sample}"
    if wrong:  # user B's UTC-day row is the wrong one under the user-timezone boundary
        assert PLAN_B in sample and any(USER_B in key and str(scenario.local_day) in key for key in sample), sample


def test_dst_days_outside_the_default_window_are_not_looked_at(baseline_db: Database) -> None:
    _book(baseline_db, SCENARIOS[0])
    assert _bud001(baseline_db, "utc", 30)[0] == 0
    assert _bud001(baseline_db, "user-timezone", 30)[0] == 0


# -- the SQL expressions themselves, on a session whose TimeZone is deliberately not UTC --------------------

SESSION_ZONES = ["Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati"]
INSTANTS = [  # (instant, zone or None for UTC, day)
    (utc("2026-03-28 22:30"), "Europe/Sofia", D("2026-03-29")),
    (utc("2026-03-29 21:30"), "Europe/Sofia", D("2026-03-30")),
    (utc("2026-10-25 21:30"), "Europe/Sofia", D("2026-10-25")),
    (utc("2026-03-09 04:30"), "America/New_York", D("2026-03-09")),
    (utc("2026-11-02 04:30"), "America/New_York", D("2026-11-01")),
    (utc("2026-03-28 22:30"), None, D("2026-03-28")),
    (utc("2026-11-02 04:30"), None, D("2026-11-02")),
]


@pytest.fixture
def foreign_session(pg: PgServer) -> Iterator[psycopg.Connection]:
    """A connection to the session's server; each test sets a session TimeZone other than UTC."""
    with connect(pg.database("postgres"), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("session_zone", SESSION_ZONES)
def test_transaction_day_does_not_depend_on_the_session_zone(foreign_session: psycopg.Connection,
                                                             session_zone: str) -> None:
    foreign_session.execute("SELECT set_config('TimeZone', %s, false)", (session_zone,))
    assert foreign_session.execute("SHOW TimeZone").fetchone() == (session_zone,)
    for instant, zone, day in INSTANTS:
        zone_sql = f"'{zone}'" if zone else None
        query = f"SELECT {transaction_day_sql('%s::timestamptz', zone_sql)}"
        assert foreign_session.execute(query.encode(), (instant,)).fetchone() == (day,), (instant, zone)


@pytest.mark.parametrize("session_zone", SESSION_ZONES)
def test_plan_day_is_the_utc_date(foreign_session: psycopg.Connection, session_zone: str) -> None:
    foreign_session.execute("SELECT set_config('TimeZone', %s, false)", (session_zone,))
    for stored, day in ((utc("2026-01-11 00:00"), D("2026-01-11")), (utc("2026-01-11 23:59:59"), D("2026-01-11")),
                        (datetime(2026, 1, 12, 0, 30, tzinfo=ZoneInfo("Europe/Sofia")), D("2026-01-11"))):
        query = f"SELECT {plan_day_sql('%s::timestamptz')}"
        assert foreign_session.execute(query.encode(), (stored,)).fetchone() == (day,)


@pytest.mark.parametrize(("zone", "effective"), [("'Europe/Sofia'", "Europe/Sofia"), ("'Mars/Olympus'", "UTC"),
                                                 ("NULL::varchar", "UTC"), ("''", "UTC")])
def test_valid_zone_falls_back_to_utc(foreign_session: psycopg.Connection, zone: str, effective: str) -> None:
    assert foreign_session.execute(f"SELECT {valid_zone_sql(zone)}".encode()).fetchone() == (effective,)


def test_user_zones(baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute("SET TimeZone = 'Asia/Tokyo'")
        conn.execute(
            """INSERT INTO users (id, email, password_hash, timezone) VALUES
                 ('00000000-0000-0000-0000-000000000001', 'a@example.com', 'h', 'Europe/Sofia'),
                 ('00000000-0000-0000-0000-000000000002', 'b@example.com', 'h', 'America/New_York'),
                 ('00000000-0000-0000-0000-000000000003', 'c@example.com', 'h', NULL),
                 ('00000000-0000-0000-0000-000000000004', 'd@example.com', 'h', 'Mars/Olympus')""")
        rows = conn.execute(f"SELECT user_id::text, zone FROM ({user_zones_sql()}) z ORDER BY 1".encode()).fetchall()
        conn.rollback()
    assert rows == [("00000000-0000-0000-0000-000000000001", "Europe/Sofia"),
                    ("00000000-0000-0000-0000-000000000002", "America/New_York"),
                    ("00000000-0000-0000-0000-000000000003", "UTC"),
                    ("00000000-0000-0000-0000-000000000004", "UTC")]


def test_unknown_boundary_is_a_usage_error() -> None:
    assert check_boundary("utc") == "utc" and check_boundary("user-timezone") == "user-timezone"
    with pytest.raises(UsageError):
        check_boundary("local")
    with pytest.raises(UsageError):
        options_for(CheckRequest(day_boundary="local"))
