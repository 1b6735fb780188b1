"""Sections 5 and 7: repeated transactions (DUP003) and plans whose spent_amount drifted (BUD001).

Both need the live transactions grouped; DUP003's key (user, category, amount, second) refines BUD001's
(user, day, category), so one grouping serves both in a single statement.
"""

from __future__ import annotations

from ..findings import FixSafety, Severity
from .base import Family, QueryRule, Rule
from .context import CheckContext, Outcome
from .dayboundary import plan_day_sql, transaction_day_sql, user_zones_sql

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
          "plan row count too.",
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


def statement(ctx: CheckContext) -> str:
    """Gives the one statement that evaluates DUP003 and BUD001 over a single grouping of the transactions.

    fine: live transactions grouped by DUP003's key (user, category, day, amount, second);
    keyed: fine and the plan rows of the window stacked (UNION ALL) and grouped by BUD001's key (user,
    category, day) — duplicates counted on the way; the stacking compares both sides without a FULL JOIN
    and lets NULL categories meet.
    """
    live = "t.deleted_at IS NULL AND " if ctx.schema.has("transactions.deleted_at") else ""
    created = ctx.schema.creation_column("transactions")
    window = ctx.options.since_seconds
    since = f"now() - make_interval(secs => {int(window)})" if window is not None else None
    newest = f"max(t.{created})" if created and since else "NULL::timestamptz"
    recent = f"newest >= {since}" if since else "true"
    by_zone = ctx.options.day_boundary == "user-timezone"
    zone_join = f" LEFT JOIN ({user_zones_sql()}) z ON z.user_id = t.user_id" if by_zone else ""
    tx_day = transaction_day_sql("t.spent_at", "coalesce(z.zone, 'UTC')" if by_zone else None)
    start = f"((now() AT TIME ZONE 'UTC')::date - {int(ctx.options.budget_days)})"
    if since:
        start = f"greatest({start}, (({since}) AT TIME ZONE 'UTC')::date)"
    plan_day = plan_day_sql("t.date")
    return f"""
WITH fine AS (
    SELECT t.user_id, {tx_day} AS day, t.category, sum(t.amount) AS total, count(*) AS n,
           max(t.id::text) AS last_id, {newest} AS newest
      FROM transactions t{zone_join}
     WHERE {live}t.spent_at IS NOT NULL
     GROUP BY t.user_id, 2, t.category, t.amount, date_trunc('second', t.spent_at)),
keyed AS (
    SELECT user_id, day, category, sum(total) AS total, sum(spent) AS spent, bool_or(planned) AS planned,
           min(plan_id) AS plan_id, sum(n - 1) FILTER (WHERE n > 1 AND {recent}) AS surplus,
           count(*) FILTER (WHERE n > 1 AND {recent}) AS dup_groups,
           min(last_id) FILTER (WHERE n > 1 AND {recent}) AS dup_sample
      FROM (SELECT user_id, day, category, total, 0 AS spent, false AS planned, NULL AS plan_id, n, last_id,
                   newest
              FROM fine
            UNION ALL
            SELECT t.user_id, {plan_day}, t.category, 0, coalesce(t.spent_amount, 0), true, t.id::text, 1, NULL,
                   NULL
              FROM daily_plan t WHERE {plan_day} >= {start}) stacked
     GROUP BY user_id, day, category)
SELECT coalesce(sum(surplus), 0), coalesce(sum(dup_groups), 0),
       (array_agg(dup_sample) FILTER (WHERE dup_sample IS NOT NULL))[1:%(n)s],
       count(*) FILTER (WHERE day >= {start} AND (NOT planned OR total <> spent)),
       (array_agg(coalesce(plan_id, user_id::text || '@' || day || '/' || coalesce(category, '')))
            FILTER (WHERE day >= {start} AND (NOT planned OR total <> spent)))[1:%(n)s]
  FROM keyed"""


def evaluate(ctx: CheckContext, rules: tuple[Rule, ...]) -> list[Outcome]:
    """Gives DUP003's and BUD001's outcomes from one pass over the live transactions."""
    ctx.cur.execute(statement(ctx), {"n": ctx.options.sample})
    row = ctx.cur.fetchone()
    assert row is not None
    surplus, groups, dup_sample, mismatched, bud_sample = row
    codes = {r.code for r in rules}
    out = []
    if "DUP003" in codes:
        out.append(Outcome("DUP003", "transactions", int(surplus), int(groups), tuple(dup_sample or ())))
    if "BUD001" in codes:
        out.append(Outcome("BUD001", "daily_plan", int(mismatched), sample=tuple(bud_sample or ()),
                           column="spent_amount"))
    return out


FAMILY = Family("spending", RULES, evaluate)
