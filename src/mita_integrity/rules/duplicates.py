"""Section 5: users sharing an e-mail and calendar entries sharing a day (DUP003 lives with BUD001)."""

from __future__ import annotations

from ..findings import FixSafety, Severity, Status
from .base import Family, QueryRule, Rule
from .context import CheckContext, Outcome, ident
from .dayboundary import plan_day_sql

DUP001 = QueryRule(
    code="DUP001", name="duplicate-user-email", section=5, severity=Severity.CRITICAL,
    finds="users whose e-mails are equal ignoring case and surrounding spaces (blank ones are NUL001's).",
    why="Two accounts for one address: log-in picks one at random, password resets reach the wrong account, "
        "and the plain UNIQUE on email does not see 'Ann@x.com' and 'ann@x.com '.",
    example="'Ann@Example.com' and 'ann@example.com '",
    repair="None: merging accounts needs a person (which one keeps the data?).", repair_safety=FixSafety.NONE,
    table="users", column="email", message="e-mail shared by another account",
    hint="merge the accounts by hand; then add a unique index on lower(btrim(email))",
)

DUP002 = QueryRule(
    code="DUP002", name="duplicate-calendar-entry", section=5, severity=Severity.HIGH,
    finds="daily_plan rows sharing (user_id, day of date, category); NULL categories count as equal.",
    why="The app updates only the first row of a day, so spending splits across the duplicates and the "
        "day shows wrong totals; migration 0023's unique constraint cannot be added while they exist.",
    example="two rows for (user, 2026-01-11, 'food'): one at 00:00, one at 14:30 from a re-submitted onboarding",
    repair="Safe: merge into the keeper (earliest created_at, then id): spent summed, planned and daily_budget "
           "the maximum (planned summed for goal_savings: two goals each plan their own saving); the others "
           "archived and deleted.",
    repair_safety=FixSafety.SAFE, table="daily_plan", requires=("daily_plan.category", "daily_plan.date"),
    message="calendar entry duplicated",
    hint="`mita-integrity fix --apply --select DUP002` merges them (sums spending)",
)

RULES: tuple[Rule, ...] = (DUP001, DUP002)
MIDNIGHT_CHECK = "ck_daily_plan_date_midnight"
UNIQUE_KEY = ("user_id", "date", "category")


def _since_having(ctx: CheckContext, table: str) -> str:
    column = ctx.schema.creation_column(table)
    if ctx.options.since_seconds is None:
        return ""
    if column is None:
        return " AND false"
    return f' AND max(t.{ident(column)}) >= now() - make_interval(secs => {int(ctx.options.since_seconds)})'


def _surplus(ctx: CheckContext, grouped: str) -> tuple[int, int, tuple[str, ...]]:
    """Gives (surplus rows, duplicated keys, sample of surplus keys) of a query of (n, ids) groups."""
    ctx.cur.execute(
        f"WITH d AS MATERIALIZED ({grouped}) SELECT coalesce(sum(n - 1), 0), count(*), "
        "ARRAY(SELECT x FROM d, unnest(d.ids[2:]) AS x LIMIT %s) FROM d",
        (ctx.options.sample,),
    )
    row = ctx.cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), tuple(row[2] or ())


def guaranteed_unique(ctx: CheckContext) -> str | None:
    """Gives the name of the constraint that makes DUP002 impossible, or None."""
    unique = next((c for c in ctx.schema.constraints if c.kind == "u" and c.table == "daily_plan"
                   and set(c.columns) == set(UNIQUE_KEY)), None)
    if unique is None:
        return None
    nulls_equal = "NULLS NOT DISTINCT" in unique.definition or ctx.schema.not_null("daily_plan", "category")
    midnight = ctx.schema.validated_check((MIDNIGHT_CHECK,))
    return f"{unique.name} and {midnight.name}" if nulls_equal and midnight else None


def grouped_sql(ctx: CheckContext, code: str) -> str:
    """Gives the query of duplicated keys (n rows, ids keeper first) of DUP001 or DUP002."""
    table = "users" if code == "DUP001" else "daily_plan"
    # The keeper (first id) is the earliest created row, then the smallest id.
    created = "t.created_at NULLS LAST, " if ctx.schema.has(f"{table}.created_at") else ""
    ids = f"array_agg(t.id::text ORDER BY {created}t.id) AS ids"
    if code == "DUP001":
        return (f"SELECT count(*) AS n, {ids} FROM users t WHERE btrim(t.email) <> '' "
                f"GROUP BY lower(btrim(t.email)) HAVING count(*) > 1{_since_having(ctx, 'users')}")
    return (f"SELECT count(*) AS n, {ids} FROM daily_plan t GROUP BY t.user_id, {plan_day_sql('t.date')}, "
            f"t.category HAVING count(*) > 1{_since_having(ctx, 'daily_plan')}")


def evaluate(ctx: CheckContext, rules: tuple[Rule, ...]) -> list[Outcome]:
    """Gives the outcomes of DUP001 and DUP002 (each one grouping)."""
    out = []
    for rule in rules:
        constraint = guaranteed_unique(ctx) if rule.code == "DUP002" else None
        if constraint:
            out.append(Outcome(rule.code, "daily_plan", reason=f"guaranteed by {constraint}",
                               status=Status.GUARANTEED))
            continue
        count, groups, sample = _surplus(ctx, grouped_sql(ctx, rule.code))
        out.append(Outcome(rule.code, rule.table or "", count, groups, sample))
    return out


FAMILY = Family("duplicates", RULES, evaluate)
