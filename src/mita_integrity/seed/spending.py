"""Transactions (one INSERT … SELECT over a per-user series) and the daily_plan derived from them."""

from __future__ import annotations

import math

from .context import DAY, SeedRun
from .hashing import num_array, quote, text_array
from .plan import CATEGORIES, EVERYDAY, PLAN_HEADROOM, PLANNED_AHEAD

_NOTES = ("split with friends", "work lunch", "birthday present", "reimbursable")


def _category_lookup() -> tuple[str, str]:
    """Gives SQL int[] literals mapping a bucket to a category index: [0, 1000) by weight, and the
    first transaction's [0, everyday weight) over the everyday categories only."""
    table: list[int] = []
    for i, cat in enumerate(CATEGORIES):
        table += [i] * cat.weight
    everyday = [i for i in table if i < EVERYDAY]
    return ("ARRAY[" + ",".join(map(str, table[:1000])) + "]::int[]",
            "ARRAY[" + ",".join(map(str, everyday)) + "]::int[]")


def _merchants() -> tuple[str, str, str]:
    """Gives SQL arrays: all merchants in one list, each category's offset into it, and its count."""
    flat: list[str] = []
    offsets, counts = [], []
    for cat in CATEGORIES:
        offsets.append(len(flat))
        counts.append(len(cat.merchants))
        flat += cat.merchants
    ints = "ARRAY[{}]::int[]"
    return text_array(tuple(flat)), ints.format(",".join(map(str, offsets))), ints.format(",".join(map(str, counts)))


def insert_transactions(run: SeedRun) -> None:
    """Inserts every user's transactions over the last `days` days.

    Each row is a pure function of (seed, the transaction's global number tn): category by weight, a
    log-uniform amount in the category's range (in the user's currency), a day in the window and a time of
    day (mostly 07:00-23:00). The k-th transaction of a user sits at second k of a `bucket`-wide slot, so a
    user's transactions never share a second. The first one is recent (within 7 days), everyday and never
    deleted: every active user has live spending in the budget window.
    """
    h, days, now, width = run.h, run.options.days, run.now, run.bucket
    names = text_array(tuple(c.name for c in CATEGORIES))
    lows = num_array(tuple(c.low for c in CATEGORIES))
    spans = num_array(tuple(math.log(c.high / c.low) for c in CATEGORIES))
    merchants, offsets, counts = _merchants()
    by_weight, everyday = _category_lookup()
    savings = [c.name for c in CATEGORIES].index("savings")
    utilities = [c.name for c in CATEGORIES].index("utilities")
    first_days, all_days = min(days, 7) / 1048576, days / 1048576
    ranks = sorted(range(len(CATEGORIES)), key=lambda i: CATEGORIES[i].name)
    name_rank = "ARRAY[" + ",".join(str(ranks.index(i)) for i in range(len(CATEGORIES))) + "]::int[]"
    run.insert("transactions", f"""
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, merchant, is_recurring,
                          confidence_score, receipt_url, notes, updated_at, goal_id, deleted_at)
SELECT {h.uuid('t', 'x.tn')}, s.id, ({names})[x.ci + 1],
       (CASE WHEN s.whole THEN greatest(100, (x.price)::int8 * 100) ELSE greatest(1, (x.price * 100)::int8) END)
         * 0.01,
       s.currency, to_timestamp(x.epoch), to_timestamp(x.created),
       nullif(({merchants})[1 + ({offsets})[x.ci + 1] + ((x.b3 & 255) % ({counts})[x.ci + 1])::int], ''),
       x.ci = {utilities},
       CASE WHEN ((x.b3 >> 8) & 15) < 3 THEN 0.8 + ((x.b3 >> 12) & 1023)::float8 / 5200 END,
       CASE WHEN ((x.b3 >> 8) & 15) < 3 THEN 'https://receipts.mita.app/' || x.tn || '.jpg' END,
       CASE WHEN ((x.b1 >> 60) & 15) = 0 THEN ({text_array(_NOTES)})[1 + ((x.b3 >> 22) & 3)] END,
       to_timestamp(CASE WHEN ((x.b2 >> 32) & 15) = 0
                         THEN least({now}, x.created + ((x.b2 >> 36) & 255) * 600) ELSE x.created END),
       CASE WHEN x.ci = {savings} AND s.goals_n > 0 THEN s.first_goal_id END,
       CASE WHEN x.k > 1 AND ((x.b2 >> 44) & 1023) < 31
            THEN to_timestamp(least({now}, x.created + ((x.b2 >> 54) & 255) * 300)) END
  FROM (SELECT * FROM seed_users WHERE n_tx > 0 ORDER BY id) s
 CROSS JOIN LATERAL (
    -- Each level is computed once per row (OFFSET 0 keeps the planner from inlining it into the next). A
    -- user's rows go in (day, category) order: daily_plan's GROUP BY then finds them already sorted.
    SELECT q.*, ({lows})[q.ci + 1] * exp(((q.b1 >> 20) & 1048575) * ({spans})[q.ci + 1] / 1048576) * s.scale
                  AS price,
           least({now}, q.epoch + ((q.b2 >> 20) & 4095)) AS created
      FROM (
        SELECT p.*, (CASE WHEN p.raw0 > {now - width} THEN p.raw0 - {DAY} ELSE p.raw0 END) / {width} * {width}
                    + p.k AS epoch
          FROM (
            SELECT o.*,
                   CASE WHEN o.k = 1 THEN ({everyday})[1 + o.bucket % {len(_everyday_weights())}]
                        ELSE ({by_weight})[1 + o.bucket] END AS ci,
                   {run.today} - floor(((o.b1 >> 40) & 1048575)
                                       * CASE WHEN o.k = 1 THEN {first_days!r} ELSE {all_days!r} END)::bigint * {DAY}
                   + CASE WHEN ((o.b3 >> 24) & 1023) < 870 THEN 25200 + ((o.b2 & 1048575) * 57600 / 1048576)
                          ELSE (o.b2 & 1048575) * 86400 / 1048576 END AS raw0
              FROM (
                SELECT g.k, s.tx_start + g.k AS tn, n.b1, n.b2, n.b3, (n.b1 & 1048575) % 1000 AS bucket
                  FROM generate_series(1, s.n_tx) AS g(k)
                 CROSS JOIN LATERAL (SELECT {h.bits('s.tx_start + g.k', 201)} AS b1,
                                            {h.bits('s.tx_start + g.k', 202)} AS b2,
                                            {h.bits('s.tx_start + g.k', 203)} AS b3) n
                OFFSET 0) o
            OFFSET 0) p
        OFFSET 0) q
     ORDER BY q.epoch / {DAY}, ({name_rank})[q.ci + 1], q.epoch) x""")


def _everyday_weights() -> list[int]:
    return [i for i, cat in enumerate(CATEGORIES[:EVERYDAY]) for _ in range(cat.weight)]


def _share_sql(category: str) -> str:
    whens = " ".join(f"WHEN {quote(c.name)} THEN {c.budget_share!r}" for c in CATEGORIES)
    return f"(CASE {category} {whens} ELSE 0.05 END)"


def insert_daily_plan(run: SeedRun) -> None:
    """Inserts one calendar row per (user, UTC day, category) with transactions, plus tomorrow's plans.

    spent_amount is exactly the sum of the key's live transactions (0 for a key whose transactions are all
    deleted, and for the planned-ahead rows); `date` is the day at midnight UTC. The transactions lie in
    key order, so a sort-based GROUP BY streams (a hash table of millions of numeric sums would not).
    """
    h = run.h
    planned = f"round(s.daily_budget * {_share_sql('{category}')} * {PLAN_HEADROOM}, 2)"
    status = ("CASE WHEN z.planned > 0 AND z.spent > z.planned THEN 'red' "
              "WHEN z.planned > 0 AND z.spent > 0.8 * z.planned THEN 'yellow' ELSE 'green' END")
    run.execute("SET LOCAL enable_hashagg = off; SET LOCAL work_mem = '1GB'")
    run.insert("daily_plan", f"""
INSERT INTO daily_plan (id, user_id, date, plan_json, created_at, category, planned_amount, spent_amount,
                        daily_budget, status)
SELECT {h.uuid('p', 'z.rn')}, z.user_id, z.day::timestamp AT TIME ZONE 'UTC', NULL,
       (z.day::timestamp - interval '4 hours') AT TIME ZONE 'UTC', z.category, z.planned, z.spent, z.daily_budget,
       {status}
  FROM (
    SELECT y.*, s.daily_budget, {planned.format(category='y.category')} AS planned
      FROM (
        SELECT g.*, row_number() OVER (ORDER BY g.user_id, g.day, g.category) AS rn
          FROM (
            SELECT x.user_id, (x.spent_at AT TIME ZONE 'UTC')::date AS day, x.category,
                   coalesce(sum(x.amount) FILTER (WHERE x.deleted_at IS NULL), 0) AS spent
              FROM transactions x
             WHERE x.spent_at IS NOT NULL
             GROUP BY 1, 2, 3) g
        OFFSET 0) y
      JOIN seed_users s ON s.id = y.user_id
    OFFSET 0) z""")
    run.execute("SET LOCAL enable_hashagg = on; SET LOCAL work_mem = '256MB'")
    tomorrow = run.day_start(-1).date().isoformat()
    run.insert("daily_plan", f"""
INSERT INTO daily_plan (id, user_id, date, plan_json, created_at, category, planned_amount, spent_amount,
                        daily_budget, status)
SELECT {h.uuid('p-ahead', 's.n', 'c.category')}, s.id, DATE '{tomorrow}'::timestamp AT TIME ZONE 'UTC', NULL,
       (DATE '{tomorrow}'::timestamp - interval '4 hours') AT TIME ZONE 'UTC', c.category,
       {planned.format(category='c.category')}, 0, s.daily_budget, 'green'
  FROM seed_users s CROSS JOIN unnest({text_array(PLANNED_AHEAD)}) AS c(category)
 WHERE s.onboarded
 ORDER BY s.id, c.category""")
