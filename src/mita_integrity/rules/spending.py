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
    message="spent_amount disagrees with the day's transactions",
    hint="`mita-integrity fix --select BUD001` recomputes it; migration 0025 keeps it right",
)

RULES: tuple[Rule, ...] = (DUP003, BUD001)
_NO_CATEGORY = "chr(1)"  # a join key for NULL categories that no real category equals


def statement(ctx: CheckContext) -> str:
    """Gives the one statement that evaluates DUP003 and BUD001 over a single grouping."""
    live = "t.deleted_at IS NULL AND " if ctx.schema.has("transactions.deleted_at") else ""
    created = ctx.schema.creation_column("transactions")
    newest = f"max(t.{created})" if created else "NULL::timestamptz"
    window = ctx.options.since_seconds
    dup_since = f" AND newest >= now() - make_interval(secs => {int(window)})" if window is not None else ""
    by_zone = ctx.options.day_boundary == "user-timezone"
    zone_join = " LEFT JOIN zones z ON z.user_id = g.user_id" if by_zone else ""
    tx_day = transaction_day_sql("g.sec", "coalesce(z.zone, 'UTC')" if by_zone else None)
    start = f"((now() AT TIME ZONE 'UTC')::date - {int(ctx.options.budget_days)})"
    if window is not None:
        start = f"greatest({start}, ((now() - make_interval(secs => {int(window)})) AT TIME ZONE 'UTC')::date)"
    zones = f"zones AS MATERIALIZED ({user_zones_sql()})," if by_zone else ""
    return f"""
WITH g AS MATERIALIZED (
    SELECT t.user_id, t.category, t.amount, date_trunc('second', t.spent_at, 'UTC') AS sec,
           count(*) AS n, max(t.id::text) AS last_id, {newest} AS newest
      FROM transactions t
     WHERE {live}t.spent_at IS NOT NULL
     GROUP BY 1, 2, 3, 4),
{zones}
dup AS (SELECT coalesce(sum(n - 1), 0) AS surplus, count(*) AS groups, (array_agg(last_id))[1:%(n)s] AS sample
          FROM g WHERE n > 1{dup_since}),
tx AS (SELECT g.user_id, g.category, {tx_day} AS day, sum(g.amount * g.n) AS total
         FROM g{zone_join} WHERE {tx_day} >= {start} GROUP BY 1, 2, 3),
pl AS (SELECT t.user_id, t.category, {plan_day_sql('t.date')} AS day,
              sum(coalesce(t.spent_amount, 0)) AS spent, min(t.id::text) AS plan_id
         FROM daily_plan t WHERE {plan_day_sql('t.date')} >= {start} GROUP BY 1, 2, 3),
mm AS (SELECT coalesce(pl.plan_id, tx.user_id::text || '@' || tx.day || '/' || coalesce(tx.category, '')) AS key
         FROM tx FULL JOIN pl
           ON pl.user_id = tx.user_id AND pl.day = tx.day
          AND coalesce(pl.category, {_NO_CATEGORY}) = coalesce(tx.category, {_NO_CATEGORY})
        WHERE pl.user_id IS NULL OR coalesce(tx.total, 0) <> pl.spent)
SELECT dup.surplus, dup.groups, dup.sample,
       (SELECT count(*) FROM mm), ARRAY(SELECT key FROM mm LIMIT %(n)s)
  FROM dup"""


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
