"""Section 5: users sharing an e-mail and calendar entries sharing a day (DUP003 lives with BUD001)."""

from __future__ import annotations

from ...findings import FixSafety, Severity, Status
from .base import Family, MergeFix, QueryRule, Rule, each_rule, literal, rel
from .context import CheckContext, Outcome, ident
from .dayboundary import plan_day_sql
from .nulls import NOT_BLANK, trimmed
from .references import ORPHANS


def _surplus_script(rule: Rule, grouped: str) -> str:
    return (f"WITH d AS ({grouped})\n"
            f"SELECT {literal(rule.code)} AS code, {literal(str(rule.table))} AS \"table\", "
            "coalesce(sum(n - 1), 0) AS count, count(*) AS groups FROM d;")


def _dup001(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    """Gives DUP001's outcome (one grouping of the users)."""
    if ctx.kept is not None:  # keeping a base: each group's rows too (check/incremental/), in one statement
        ctx.cur.execute(f"SELECT n, ids FROM ({dup001_grouped_sql(ctx)}) d")
        found = ctx.cur.fetchall()
        ctx.kept["DUP001"] = [i for _, ids in found for i in ids]
        surplus = [i for _, ids in found for i in ids[1:]]
        return [Outcome(rule.code, "users", len(surplus), len(found), tuple(surplus[: ctx.options.sample]))]
    count, groups, sample = _surplus(ctx, dup001_grouped_sql(ctx))
    return [Outcome(rule.code, "users", count, groups, sample)]


def _dup002(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    """Gives DUP002's outcome: guaranteed by 0023's key and midnight check, else one grouping of the plan."""
    constraint = guaranteed_unique(ctx)
    if constraint:
        return [Outcome(rule.code, "daily_plan", reason=f"guaranteed by {constraint}", status=Status.GUARANTEED)]
    if ctx.kept is not None:  # keeping a base: each group's rows too (check/incremental/), in one statement
        ctx.cur.execute(dup002_members_sql(ctx))
        found = ctx.cur.fetchall()
        ctx.kept["DUP002"] = [i for _, ids in found for i in ids]
        surplus = [i for _, ids in found[: ctx.options.sample] for i in ids[1:]]
        return [Outcome(rule.code, "daily_plan", sum(int(n) - 1 for n, _ in found), len(found),
                        tuple(surplus[: ctx.options.sample]))]
    ctx.cur.execute(dup002_sql(ctx), {"n": ctx.options.sample})
    count, groups, sample = ctx.cur.fetchone() or (0, 0, None)
    return [Outcome(rule.code, "daily_plan", int(count), int(groups), tuple(sample or ()))]


DUP001 = QueryRule(
    code="DUP001", name="duplicate-user-email", section=5, severity=Severity.CRITICAL,
    finds="users whose e-mails are equal ignoring case and surrounding spaces (blank ones are NUL001's).",
    why="Two accounts for one address: log-in picks one at random, password resets reach the wrong account, "
        "and the plain UNIQUE on email does not see 'Ann@x.com' and 'ann@x.com '.",
    example="'Ann@Example.com' and 'ann@example.com '",
    repair="None: merging accounts needs a person (which one keeps the data?).", repair_safety=FixSafety.NONE,
    table="users", column="email", message="e-mail shared by another account",
    hint="merge the accounts by hand; then add a unique index on lower(btrim(email))",
    evaluate=_dup001, script=lambda ctx, rule: _surplus_script(rule, dup001_grouped_sql(ctx)),
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
    evaluate=_dup002, script=lambda ctx, rule: _surplus_script(rule, dup002_grouped_sql(ctx)),
    fix=MergeFix(after=(*ORPHANS, "CAL001"), needs="count(*) > 1"),
)

RULES: tuple[Rule, ...] = (DUP001, DUP002)
MIDNIGHT_CHECK = "ck_daily_plan_date_midnight"
MIDNIGHT_DEFINITION = "date = date_trunc('day', date, 'UTC')"  # as migration 0023 adds it
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
    """Gives the name of the constraint that makes DUP002 impossible, or None (always None with --no-guarantees)."""
    if ctx.options.no_guarantees:
        return None
    unique = next((c for c in ctx.schema.constraints if c.kind == "u" and c.table == "daily_plan"
                   and set(c.columns) == set(UNIQUE_KEY) and c.enforced), None)
    if unique is None:
        return None
    # DUP002 groups NULLs as equal in every column of the key; a plain UNIQUE lets rows with a NULL through.
    nulls_equal = ("NULLS NOT DISTINCT" in unique.definition
                   or all(ctx.schema.not_null("daily_plan", c) for c in UNIQUE_KEY))
    midnight = ctx.schema.validated_check("daily_plan", (MIDNIGHT_DEFINITION,))
    return f"{unique.name} and {midnight.name}" if nulls_equal and midnight else None


def _ids(ctx: CheckContext, table: str) -> str:
    # The keeper (first id) is the earliest created row, then the smallest id.
    created = "t.created_at NULLS LAST, " if ctx.schema.has(f"{table}.created_at") else ""
    return f"array_agg(t.id::text ORDER BY {created}t.id) AS ids"


def dup001_key_sql(alias: str = "t") -> str:
    """Gives DUP001's grouping key of the users row `alias` (check/incremental/ restricts groups by it)."""
    return f"lower({trimmed(f'{alias}.email')})"


def dup001_grouped_sql(ctx: CheckContext, within: str = "") -> str:
    """Gives DUP001's duplicated keys (n rows, ids keeper first); `within`: SQL on users t keeping whole groups
    only (check --incremental's restriction to the groups a change touched).

    Blank (whitespace of any kind, tabs too) is NUL001's; surrounding whitespace of any kind is ignored.
    """
    within = f" AND {within}" if within else ""
    return (f"SELECT count(*) AS n, {_ids(ctx, 'users')} FROM {rel('users')} t WHERE t.email ~ {NOT_BLANK}{within} "
            f"GROUP BY {dup001_key_sql()} HAVING count(*) > 1{_since_having(ctx, 'users')}")


def dup002_grouped_sql(ctx: CheckContext, within: str = "") -> str:
    """Gives DUP002's duplicated keys (user_id, day, category, n rows): counts only, no array per key.
    `within`: SQL on daily_plan t keeping whole groups only (check --incremental's restriction)."""
    where = f" WHERE {within}" if within else ""
    return (f"SELECT t.user_id, {plan_day_sql('t.date')} AS day, t.category, count(*) AS n "
            f"FROM {rel('daily_plan')} t{where} GROUP BY 1, 2, 3 HAVING count(*) > 1{_since_having(ctx, 'daily_plan')}")


def dup002_sql(ctx: CheckContext, within: str = "") -> str:
    """Gives DUP002's statement: (surplus rows, duplicated keys, sample of surplus ids).

    The keys with more than one row are found first (a count per key); the surplus ids (all but the keeper:
    earliest created, then smallest id) are then read for at most --sample keys, each by its user and day.
    """
    created = "t.created_at NULLS LAST, " if ctx.schema.has("daily_plan.created_at") else ""
    return f"""WITH d AS MATERIALIZED ({dup002_grouped_sql(ctx, within)})
SELECT coalesce(sum(n - 1), 0), count(*), ARRAY(
    SELECT x.id FROM (SELECT * FROM d LIMIT %(n)s) k
     CROSS JOIN LATERAL (
        SELECT t.id::text AS id FROM {rel('daily_plan')} t
         WHERE (t.user_id = k.user_id OR (k.user_id IS NULL AND t.user_id IS NULL))
           AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC')
           AND t.category IS NOT DISTINCT FROM k.category
         ORDER BY {created}t.id OFFSET 1) x
     LIMIT %(n)s)
  FROM d"""


def dup002_members_sql(ctx: CheckContext, within: str = "") -> str:
    """Gives per duplicated key (n rows, its ids keeper first), each key's ids read by its user and day as
    dup002_sql reads the sample's: what a recorded run keeps for check --incremental."""
    created = "t.created_at NULLS LAST, " if ctx.schema.has("daily_plan.created_at") else ""
    return f"""SELECT d.n, ARRAY(
    SELECT t.id::text FROM {rel('daily_plan')} t
     WHERE (t.user_id = d.user_id OR (d.user_id IS NULL AND t.user_id IS NULL))
       AND t.date >= (d.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((d.day + 1)::timestamp AT TIME ZONE 'UTC')
       AND t.category IS NOT DISTINCT FROM d.category
     ORDER BY {created}t.id)
  FROM ({dup002_grouped_sql(ctx, within)}) d"""


FAMILY = Family("duplicates", RULES, each_rule, separable=True)
