"""Sections 5 and 7: repeated transactions (DUP003) and plans whose spent_amount drifted (BUD001).

Grouping every transaction by DUP003's key was the slowest part of a check; DUP003 now streams the
(user_id, spent_at) index for candidate seconds and groups only those, and BUD001 groups once by its own
key (see each statement's docstring).
"""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import QueryRule, RecomputeFix, Rule, rel
from .context import CheckContext, Outcome, Scoped, ident
from .dayboundary import plan_day_sql, transaction_day_sql, user_zones_sql
from .plan_limits import fits_plan_sql, total_fits_sql
from .references import ORPHANS


def _dup003(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    if ctx.kept is not None:  # keeping a base: each group's rows too (check/incremental/), in one statement
        ctx.cur.execute(dup003_sql(ctx, members=True))
        found = ctx.cur.fetchall()
        ctx.kept["DUP003"] = [i for _, _, ids in found for i in ids]
        return [Outcome(rule.code, "transactions", sum(int(n) - 1 for n, _, _ in found), len(found),
                        tuple(last for _, last, _ in found[: ctx.options.sample]))]
    ctx.cur.execute(dup003_sql(ctx), {"n": ctx.options.sample})
    surplus, groups, sample = ctx.cur.fetchone() or (0, 0, None)
    return [Outcome(rule.code, "transactions", int(surplus), int(groups), tuple(sample or ()))]


def _dup003_script(ctx: CheckContext, rule: Rule) -> str:
    statement = dup003_sql(ctx).replace("%(n)s", str(ctx.options.sample))
    return (f"SELECT 'DUP003' AS code, 'transactions' AS \"table\", s.surplus AS count, s.groups\n"
            f"  FROM ({statement}) AS s(surplus, groups, sample);")


def _bud001(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    ctx.cur.execute(bud001_sql(ctx), {"n": ctx.options.sample})
    mismatched, sample = ctx.cur.fetchone() or (0, None)
    return [Outcome(rule.code, "daily_plan", int(mismatched), sample=tuple(sample or ()), column="spent_amount")]


def _bud001_script(ctx: CheckContext, rule: Rule) -> str:
    statement = bud001_sql(ctx).replace("%(n)s", str(ctx.options.sample))
    return (f"SELECT 'BUD001' AS code, 'daily_plan' AS \"table\", s.mismatched AS count\n"
            f"  FROM ({statement}) AS s(mismatched, keys);")

DUP003 = QueryRule(
    code="DUP003", name="duplicate-transaction", section=5, severity=Severity.MEDIUM,
    finds="live transactions identical in user, category, amount and spent_at to the second.",
    why="A double-tapped 'save' or a retried sync books the same spending twice; the budget shows overspending "
        "that did not happen.",
    example="two 'food' transactions of 12.40 by one user at 2026-01-11 12:31:07",
    repair="None: two coffees at the same second are possible; confirm with the user before soft-deleting.",
    repair_safety=FixSafety.NONE, table="transactions", requires=("transactions.spent_at",),
    message="transaction repeated at the same second", hint="confirm with the user, then soft-delete the copy",
    evaluate=_dup003, script=_dup003_script,
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
    hint="`mita-integrity fix --apply --select BUD001` recomputes it; migration 0025 keeps it right",
    evaluate=_bud001, script=_bud001_script,
    # Spending is summed over mended transactions and merged plan rows.
    fix=RecomputeFix(after=(*ORPHANS, "NUL004", "NUL006", "TIM003", "CAL001", "DUP002")),
)

RULES: tuple[Rule, ...] = (DUP003, BUD001)


def dup003_sql(ctx: CheckContext, within: str = "", members: bool = False) -> str:
    """Gives DUP003's statement: (surplus rows, duplicated keys, sample of surplus ids).

    For check --incremental: `within` (SQL on the unaliased transactions row, true for whole (user_id,
    second) pairs) restricts the candidates to the pairs a change touched; `members` gives instead one row per
    duplicated group: (n, last_id, the ids of all its rows).

    Duplicates share a user and a second, so they lie next to each other in (user_id, spent_at) order —
    the order of ix_transactions_user_id_spent_at. One streaming pass finds the (user, second) pairs that
    hold more than one row (candidates, soft-deleted rows included so the index alone can answer), and
    only those few seconds are grouped exactly by the full key. No grouping of millions of keys.
    """
    live = " AND t.deleted_at IS NULL" if ctx.schema.has("transactions.deleted_at") else ""
    created = ctx.schema.creation_column("transactions")
    window = ctx.options.since_seconds
    recent = (f" AND max(t.created) >= now() - make_interval(secs => {int(window)})"
              if window is not None and created else "")
    columns = "t.user_id, t.category, t.amount, t.id, c.second"
    columns += f", t.{ident(created)} AS created" if created else ""
    # matched reads each candidate's second by the index; OFFSET 0 keeps that a nested loop (the planner, which
    # cannot tell how few the candidates are, merge-joined all 5 million live rows: 0.8 s more at scale 1).
    return f"""
WITH candidates AS MATERIALIZED (
    SELECT DISTINCT user_id, second FROM (
        SELECT user_id, date_trunc('second', spent_at) AS second,
               lag(date_trunc('second', spent_at)) OVER (PARTITION BY user_id ORDER BY spent_at) AS previous
          FROM {rel('transactions')} WHERE spent_at IS NOT NULL{" AND " + within if within else ""}) ordered
     WHERE second = previous),
matched AS (
    SELECT x.* FROM candidates c CROSS JOIN LATERAL (
        SELECT {columns} FROM {rel('transactions')} t
         WHERE t.user_id = c.user_id AND t.spent_at >= c.second AND t.spent_at < c.second + interval '1 second'{live}
        OFFSET 0) x
    UNION ALL  -- a NULL user_id is a key value like any other column's (the join above cannot match it)
    SELECT {columns} FROM candidates c
      JOIN {rel('transactions')} t ON t.user_id IS NULL AND t.spent_at >= c.second
                                   AND t.spent_at < c.second + interval '1 second'{live}
     WHERE c.user_id IS NULL),
duplicated AS (
    SELECT count(*) AS n, max(t.id::text) AS last_id{", array_agg(t.id::text) AS ids" if members else ""}
      FROM matched t
     GROUP BY t.user_id, t.category, t.amount, t.second
    HAVING count(*) > 1{recent})
{"SELECT n, last_id, ids FROM duplicated" if members else
 "SELECT coalesce(sum(n - 1), 0), count(*), (array_agg(last_id))[1:%(n)s] FROM duplicated"}"""


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
    # The same window as a timestamptz bound on the raw column, so an index on spent_at or date can serve it
    # (a cast of the column cannot). It is implied by the exact day test beside it, which stays: in UTC the
    # day starts at that instant; in a user's zone at most 14 hours earlier, hence a day's slack.
    since = f"(({start})::timestamp AT TIME ZONE 'UTC')"
    tx_bound = f"t.spent_at >= {since} - interval '1 day'" if by_zone else f"t.spent_at >= {since}"
    return f"""
WITH keyed AS (
    SELECT user_id, day, category, sum(total) AS total, sum(spent) AS spent, bool_or(planned) AS planned
      FROM (SELECT t.user_id, {tx_day} AS day, t.category, t.amount AS total, 0 AS spent, false AS planned
              FROM {rel('transactions')} t{zone_join}
             WHERE {live}{tx_bound} AND {fits_plan_sql()} AND {tx_day} >= {start}
            UNION ALL
            SELECT t.user_id, {plan_day}, t.category, 0, coalesce(t.spent_amount, 0), true
              FROM {rel('daily_plan')} t WHERE t.date >= {since} AND {plan_day} >= {start}) stacked
     GROUP BY user_id, day, category)"""


def bud001_sql(ctx: CheckContext) -> str:
    """Gives BUD001's statement: (mismatched keys, sample of plan ids or user@day/category keys).

    The sample is taken with a LIMIT from the mismatched keys (kept by the server, spilling to disk if need
    be), never an array of every violation cut afterwards; a key's plan id (the smallest, as text) is looked
    up for those few keys only, which keeps the grouping narrow.
    """
    return f"""{bud001_keyed_sql(ctx)},
bad AS MATERIALIZED (SELECT user_id, day, category, planned FROM keyed WHERE {BUD001_MISMATCH})
SELECT (SELECT count(*) FROM bad),
       ARRAY(SELECT coalesce(
                 CASE WHEN b.planned THEN (
                     SELECT min(p.id::text) FROM {rel('daily_plan')} p
                      WHERE p.user_id = b.user_id AND p.category IS NOT DISTINCT FROM b.category
                        AND p.date >= (b.day::timestamp AT TIME ZONE 'UTC')
                        AND p.date < ((b.day + 1)::timestamp AT TIME ZONE 'UTC')) END,
                 b.user_id::text || '@' || b.day || '/' || coalesce(b.category, ''))
               FROM bad b LIMIT %(n)s)"""

