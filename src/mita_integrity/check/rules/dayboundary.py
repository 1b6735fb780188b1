"""The day a transaction belongs to, defined once: BUD001, its repair and the 0025 trigger all use it.

By default the UTC calendar day of `spent_at` (as in the user's checklist); optionally the day in the
user's own time zone (`users.timezone`), falling back to UTC when that is NULL or not a zone PostgreSQL
knows — the production app moved to that later. `daily_plan.date` holds the day at midnight UTC.
"""

from __future__ import annotations

from ...database.errors import UsageError

BOUNDARIES = ("utc", "user-timezone")
UTC = "'UTC'"


def valid_zone_sql(timezone: str) -> str:
    """Gives SQL for the user's zone when PostgreSQL knows it, else 'UTC'."""
    return (f"(CASE WHEN {timezone} IS NOT NULL AND EXISTS (SELECT 1 FROM pg_timezone_names z "
            f"WHERE z.name = {timezone}) THEN {timezone} ELSE 'UTC' END)")


def user_zones_sql() -> str:
    """Gives a query of (user_id, zone): each user's zone when PostgreSQL knows it, else 'UTC'."""
    return ("SELECT u.id AS user_id, coalesce(z.name, 'UTC') AS zone FROM public.users u "
            "LEFT JOIN (SELECT DISTINCT name FROM pg_timezone_names) z ON z.name = u.timezone")


def transaction_day_sql(spent_at: str, zone: str | None = None) -> str:
    """Gives SQL for the day (a date) of a transaction spent at `spent_at`, in UTC or in a valid `zone`."""
    return f"(({spent_at}) AT TIME ZONE {zone or UTC})::date"


def plan_day_sql(date: str) -> str:
    """Gives SQL for the day a daily_plan row stands for (its date read in UTC)."""
    return f"(({date}) AT TIME ZONE 'UTC')::date"


def check_boundary(value: str) -> str:
    """Gives the boundary name, or raises UsageError for an unknown one."""
    if value not in BOUNDARIES:
        raise UsageError(f"unknown day boundary '{value}'", "use utc or user-timezone")
    return value
