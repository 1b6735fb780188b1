"""What daily_plan can hold exactly, defined once; and BUD002, the spending it cannot.

daily_plan.category is varchar(100) and daily_plan.spent_amount numeric(12,2), while transactions.category
is unbounded and transactions.amount a numeric without scale (currencies such as KWD, BHD, JOD have three
decimals). The plan's columns stay as they are — the application reads them — so a transaction *fits* the
plan only when its amount is finite (not NaN, not ±Infinity), has at most two decimals and is below 10^10
in size, and its category is NULL or at most 100 characters (char_length: varchar counts characters, and
a 101st character that is a space would otherwise be cut silently). A key fits when the sum of its fitting
transactions is below 10^10 in size.

The 0027 trigger counts only fitting transactions and leaves a key's plan row alone when its total would
not fit; BUD001 and its repair compare and recompute over fitting transactions of fitting keys only; and
BUD002 names everything else as rows that need a person. So the plan, the trigger and BUD001 agree exactly,
nothing is rounded or cut, and no write the application could make before 0025 fails after it.
"""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import QueryRule, Rule, rel
from .context import CheckContext, Outcome
from .dayboundary import transaction_day_sql, user_zones_sql

CATEGORY_MAX = 100  # daily_plan.category varchar(100)
AMOUNT_LIMIT = "10000000000"  # numeric(12,2) holds |x| < 10^10


def fits_plan_sql(alias: str = "t") -> str:
    """Gives SQL true when the transaction `alias` fits the plan exactly (false for a NULL amount)."""
    return (f"coalesce({alias}.amount <> 'NaN' AND abs({alias}.amount) < {AMOUNT_LIMIT} "
            f"AND {alias}.amount = round({alias}.amount, 2) "
            f"AND ({alias}.category IS NULL OR char_length({alias}.category) <= {CATEGORY_MAX}), false)")


def total_fits_sql(total: str) -> str:
    """Gives SQL true when a sum fits numeric(12,2) (NaN and NULL are stored as they are, so they fit)."""
    return f"coalesce({total} = 'NaN' OR abs({total}) < {AMOUNT_LIMIT}, true)"


def _bud002(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    ctx.cur.execute(bud002_sql(ctx), {"n": ctx.options.sample})
    count, sample = ctx.cur.fetchone() or (0, None)
    return [Outcome(rule.code, "transactions", int(count), sample=tuple(sample or ()), column="amount")]


def _bud002_script(ctx: CheckContext, rule: Rule) -> str:
    statement = bud002_sql(ctx).replace("%(n)s", str(ctx.options.sample))
    return (f"SELECT 'BUD002' AS code, 'transactions' AS \"table\", s.named AS count\n"
            f"  FROM ({statement}) AS s(named, sample);")


BUD002 = QueryRule(
    code="BUD002", name="spending-the-plan-cannot-hold", section=7, severity=Severity.MEDIUM,
    finds="live dated transactions that daily_plan.spent_amount cannot count exactly: an amount that is NaN, "
          "infinite, has more than two decimals or is 10^10 or more in size, a category longer than 100 "
          "characters, or a (user, day, category) key of the budget window whose total is 10^10 or more.",
    why="daily_plan.category is varchar(100) and spent_amount numeric(12,2): such spending would be cut or "
        "rounded, so the 0027 trigger and BUD001 leave it out of the plan and it is missing from the user's "
        "'left to spend'. Nothing is truncated silently: these rows are named here.",
    example="amount 0.005 (a KWD fils), or a 120-character category pasted from a receipt",
    repair="None: correct the amount or shorten the category with the user; the trigger then counts it.",
    repair_safety=FixSafety.NONE, table="transactions", column="amount", live_only=True,
    requires=("transactions.spent_at", "transactions.category"),
    message="spending daily_plan cannot hold exactly",
    hint="correct the amount (two decimals) or shorten the category (100 characters); the plan then counts it",
    evaluate=_bud002, script=_bud002_script,
)

RULES: tuple[Rule, ...] = (BUD002,)


def bud002_sql(ctx: CheckContext) -> str:
    """Gives BUD002's statement: (transactions, sample of their ids).

    Rows that do not fit are found in one scan; keys that overflow only in BUD001's window (where BUD001
    leaves them out), by a grouping of the window's fitting rows.
    """
    schema, options = ctx.schema, ctx.options
    live = "t.deleted_at IS NULL AND " if schema.has("transactions.deleted_at") else ""
    by_zone = options.day_boundary == "user-timezone"
    zone_join = f" LEFT JOIN ({user_zones_sql()}) z ON z.user_id = t.user_id" if by_zone else ""
    tx_day = transaction_day_sql("t.spent_at", "coalesce(z.zone, 'UTC')" if by_zone else None)
    start = f"((now() AT TIME ZONE 'UTC')::date - {int(options.budget_days)})"
    dated = f"{live}t.spent_at IS NOT NULL AND t.user_id IS NOT NULL AND t.amount IS NOT NULL"
    return f"""
WITH over AS (
    SELECT t.user_id, {tx_day} AS day, t.category FROM {rel('transactions')} t{zone_join}
     WHERE {dated} AND {fits_plan_sql()} AND {tx_day} >= {start}
     GROUP BY 1, 2, 3 HAVING NOT {total_fits_sql('sum(t.amount)')}),
named AS (
    SELECT t.id FROM {rel('transactions')} t WHERE {dated} AND NOT {fits_plan_sql()}
    UNION
    SELECT t.id FROM {rel('transactions')} t{zone_join}
      JOIN over o ON o.user_id = t.user_id AND o.category IS NOT DISTINCT FROM t.category AND o.day = {tx_day}
     WHERE {dated} AND {fits_plan_sql()})
SELECT count(*), (array_agg(id::text ORDER BY id))[1:%(n)s] FROM named"""

