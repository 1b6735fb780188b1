"""Sections 5 and 7: repeated transactions (DUP003) and plans whose spent_amount drifted (BUD001).

Grouping every transaction by DUP003's key was the slowest part of a check; DUP003 now streams the
(user_id, spent_at) index for candidate seconds and groups only those, and BUD001 groups once by its own
key (see each statement's docstring).
"""

from __future__ import annotations

from ..findings import FixSafety, Severity
from .base import Family, QueryRule, Rule
from .context import CheckContext, Outcome, Scoped
from .dayboundary import plan_day_sql, transaction_day_sql, user_zones_sql
from .plan_limits import fits_plan_sql, total_fits_sql

DUP003 = QueryRule(
    code="DUP003", name="duplicate-transaction", section=5, severity=Severity.MEDIUM,
    finds="live transactions identical in user, category, amount and spent_at to the second.",
    why="A double-tapped 'save' or a retried sync books the same spending twice; the budget shows overspending "
        "that did not happen.",
    example="two 'food' transactions of 12.40 by one user at 2026-01-11 12:31:07",
    repair="None: two coffees at the same second are possible; confirm with the user before soft-deleting.",
    repair_safety=FixSafety.NONE, table="transactions", requires=("transactions.spent_at",),
    message="transaction repeated at the same second", hint="confirm with the user, then soft-delete the copy",
)

BUD001 = QueryRule(
    code="BUD001", name="budget-spent-drift", section=7, severity=Severity.HIGH,
    finds="(user, day, category) keys in the budget window whose daily_plan spent_amount (summed over "
          "duplicate rows) differs from the sum of that day's live transactions; keys with spending but no "
          "plan row count too. Only spending the plan can hold exactly counts (BUD002 names the rest).",
    why="spent_amount is a derived column kept by application code; every missed update shows the user a "
        "wrong 'left to spend'. Migration 0025's trigger keeps it exact from then on.",
    example="daily_plan (user, 2026-01-11, food).spent_amount = 10.00, live transactions that day sum to 34.50",
    repair="Safe: recompute spent_amount from live transactions with the shared day definition, creating "
           "missing plan rows (archived first).",
    repair_safety=FixSafety.SAFE, table="daily_plan", column="spent_amount",
    requires=("transactions.spent_at", "transactions.category", "daily_plan.category", "daily_plan.date"),
    message="spent_amount disagrees with the day's transactions", unit="key",
    hint="`mita-integrity fix --select BUD001` recomputes it; migration 0025 keeps it right",
)

RULES: tuple[Rule, ...] = (DUP003, BUD001)


def dup003_sql(ctx: CheckContext) -> str:
    """Gives DUP003's statement: (surplus rows, duplicated keys, sample of surplus ids).

    Duplicates share a user and a second, so they lie next to each other in (user_id, spent_at) order —
    the order of ix_transactions_user_id_spent_at. One streaming pass finds the (user, second) pairs that
    hold more than one row (candidates, soft-deleted rows included so the index alone can answer), and
    only those few seconds are grouped exactly by the full key. No grouping of millions of keys.
    """
    live = " AND t.deleted_at IS NULL" if ctx.schema.has("transactions.deleted_at") else ""
    created = ctx.schema.creation_column("transactions")
    window = ctx.options.since_seconds
    recent = (f" AND max(t.{created}) >= now() - make_interval(secs => {int(window)})"
              if window is not None and created else "")
    return f"""
WITH candidates AS MATERIALIZED (
    SELECT DISTINCT user_id, second FROM (
        SELECT user_id, date_trunc('second', spent_at) AS second,
               lag(date_trunc('second', spent_at)) OVER (PARTITION BY user_id ORDER BY spent_at) AS previous
          FROM transactions WHERE spent_at IS NOT NULL) ordered
     WHERE second = previous),
duplicated AS (
    SELECT count(*) AS n, max(t.id::text) AS last_id
      FROM candidates c
      JOIN transactions t ON t.user_id = c.user_id AND t.spent_at >= c.second
                         AND t.spent_at < c.second + interval '1 second'{live}
     GROUP BY t.user_id, t.category, t.amount, c.second
    HAVING count(*) > 1{recent})
SELECT coalesce(sum(n - 1), 0), count(*), (array_agg(last_id))[1:%(n)s] FROM duplicated"""


# Only spending the plan can hold counts, and a key whose total it cannot hold is BUD002's (plan_limits.py).
BUD001_MISMATCH = f"(NOT planned OR total <> spent) AND {total_fits_sql('total')}"


def bud001_keyed_sql(ctx: Scoped) -> str:
    """Gives BUD001's CTE `keyed`: per (user, day, category) of the window, spending and plan side by side.

    Live transactions and the plan rows of the window are stacked (UNION ALL) and grouped once by
    (user, day, category): both sides are compared without a FULL JOIN, NULL categories meet, duplicate
    plan rows of a key are summed. The repair lists its keys from the same CTE.
    """
    schema, options = ctx.schema, ctx.options
    live = "t.deleted_at IS NULL AND " if schema.has("transactions.deleted_at") else ""
    window = options.since_seconds
    by_zone = options.day_boundary == "user-timezone"
    zone_join = f" LEFT JOIN ({user_zones_sql()}) z ON z.user_id = t.user_id" if by_zone else ""
    tx_day = transaction_day_sql("t.spent_at", "coalesce(z.zone, 'UTC')" if by_zone else None)
    start = f"((now() AT TIME ZONE 'UTC')::date - {int(options.budget_days)})"
    if window is not None:
        start = f"greatest({start}, ((now() - make_interval(secs => {int(window)})) AT TIME ZONE 'UTC')::date)"
    plan_day = plan_day_sql("t.date")
    return f"""
WITH keyed AS (
    SELECT user_id, day, category, sum(total) AS total, sum(spent) AS spent, bool_or(planned) AS planned,
           min(plan_id) AS plan_id
      FROM (SELECT t.user_id, {tx_day} AS day, t.category, t.amount AS total, 0 AS spent, false AS planned,
                   NULL AS plan_id
              FROM transactions t{zone_join}
             WHERE {live}t.spent_at IS NOT NULL AND {fits_plan_sql()} AND {tx_day} >= {start}
            UNION ALL
            SELECT t.user_id, {plan_day}, t.category, 0, coalesce(t.spent_amount, 0), true, t.id::text
              FROM daily_plan t WHERE {plan_day} >= {start}) stacked
     GROUP BY user_id, day, category)"""


def bud001_sql(ctx: CheckContext) -> str:
    """Gives BUD001's statement: (mismatched keys, sample of plan ids or user@day/category keys)."""
    return f"""{bud001_keyed_sql(ctx)}
SELECT count(*) FILTER (WHERE {BUD001_MISMATCH}),
       (array_agg(coalesce(plan_id, user_id::text || '@' || day || '/' || coalesce(category, '')))
            FILTER (WHERE {BUD001_MISMATCH}))[1:%(n)s]
  FROM keyed"""


def evaluate(ctx: CheckContext, rules: tuple[Rule, ...]) -> list[Outcome]:
    """Gives the outcomes of DUP003 and BUD001 (one statement each)."""
    out = []
    for rule in rules:
        if rule.code == "DUP003":
            ctx.cur.execute(dup003_sql(ctx), {"n": ctx.options.sample})
            surplus, groups, sample = ctx.cur.fetchone() or (0, 0, None)
            out.append(Outcome("DUP003", "transactions", int(surplus), int(groups), tuple(sample or ())))
        else:
            ctx.cur.execute(bud001_sql(ctx), {"n": ctx.options.sample})
            mismatched, sample = ctx.cur.fetchone() or (0, None)
            out.append(Outcome("BUD001", "daily_plan", int(mismatched), sample=tuple(sample or ()),
                               column="spent_amount"))
    return out


FAMILY = Family("spending", RULES, evaluate)
