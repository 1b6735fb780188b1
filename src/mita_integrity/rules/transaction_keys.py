"""One grouping of the live transactions by (user, day, category) feeding BUD001, BUD002 and DUP003.

Each of the three rules needs a key of the transactions that is, or refines, (user_id, day, category):
BUD001 compares a key's spending with its plan rows, BUD002 names the rows of keys whose total the plan
cannot hold, and DUP003's key (user, category, amount, second) refines it (one user's second lies in one
day). Alone, each grouped or scanned the transactions itself; here one statement groups them once, the
plan rows of BUD001's window stacked beside them (UNION ALL, so NULL categories meet and duplicate plan
rows are summed), and every rule reads its answer from that grouping:

- BUD001: a key of its window whose spending differs from its plan (as `keyed` in spending.py).
- BUD002: the rows that do not fit the plan (all time), and the fitting rows of the window's keys whose
  total the plan cannot hold (as bud002_sql).
- DUP003: only keys with more than two rows, or two rows in the same second, can hold a duplicate; their
  rows (between the key's first and last spent_at, through ix_transactions_user_id_spent_at) are grouped
  by DUP003's own key. A key of two rows at different seconds holds none: both would have to be the pair.

Sums are taken in cents (bigint): an amount that fits the plan has at most two decimals and is below 10^10,
so the cents are exact, and the per-key state stays small enough for the grouping to stay in memory
(a numeric sum's state is several times bigger, and spilled). A plan value that is not a whole number of
cents (NaN, a wider column) is summed as numeric beside it, so the comparison stays exact.

The psql script keeps each rule's own statement (spending.py, plan_limits.py); tests prove this unit gives
exactly what those statements give, rule by rule.
"""

from __future__ import annotations

from .base import Family, Rule, rel
from .context import CheckContext, Outcome, ident
from .dayboundary import plan_day_sql, transaction_day_sql, user_zones_sql
from .plan_limits import BUD002, fits_plan_sql
from .spending import BUD001, DUP003

RULES: tuple[Rule, ...] = (DUP003, BUD001, BUD002)
CENTS_LIMIT = "1000000000000"  # 10^10 in cents: numeric(12,2) holds |x| < 10^10


def _whole_cents(value: str) -> str:
    """Gives SQL true when `value` is a finite number of whole cents a bigint holds (false for NULL)."""
    return f"coalesce({value} <> 'NaN' AND abs({value}) < 1000000000000000 AND {value} = round({value}, 2), false)"


def _split(column: str) -> str:
    return f"({column} >> 31)::int AS {column}_hi, ({column} & 2147483647)::int AS {column}_lo"


def shared_sql(ctx: CheckContext, codes: frozenset[str]) -> str:
    """Gives the one statement evaluating the chosen ones of BUD001, BUD002 and DUP003.

    It yields (BUD001 keys, BUD001 sample, BUD002 rows, BUD002 sample, DUP003 surplus, DUP003 groups, DUP003
    sample); a rule not chosen reads as NULL. Samples are bounded (LIMIT) and taken only when the rule fails.
    """
    schema, options = ctx.schema, ctx.options
    bud001, bud002, dup003 = "BUD001" in codes, "BUD002" in codes, "DUP003" in codes
    live = "t.deleted_at IS NULL AND " if schema.has("transactions.deleted_at") else ""
    by_zone = options.day_boundary == "user-timezone"
    zone_join = f" LEFT JOIN ({user_zones_sql()}) z ON z.user_id = t.user_id" if by_zone else ""
    tx_day = transaction_day_sql("t.spent_at", "coalesce(z.zone, 'UTC')" if by_zone else None)
    start = f"((now() AT TIME ZONE 'UTC')::date - {int(options.budget_days)})"  # BUD002's window
    bud001_start = start
    if options.since_seconds is not None:
        bud001_start = (f"greatest({start}, ((now() - make_interval(secs => {int(options.since_seconds)})) "
                        "AT TIME ZONE 'UTC')::date)")
    since = f"(({bud001_start})::timestamp AT TIME ZONE 'UTC')"  # as bud001_keyed_sql: an index can serve it
    since_differs = options.since_seconds is not None and bud002
    tx_bound = f"t.spent_at >= {since} - interval '1 day'" if by_zone else f"t.spent_at >= {since}"
    fits = fits_plan_sql()
    in_bud001 = f"{fits} AND {tx_bound} AND {tx_day} >= {bud001_start}"
    dated = "t.user_id IS NOT NULL AND t.amount IS NOT NULL"
    # BUD001 alone reads only its window's fitting rows; BUD002 and DUP003 need every live dated row.
    where = f"{live}t.spent_at IS NOT NULL"
    if not dup003:  # BUD002 needs the rows that do not fit (all time) and its window's; BUD001 its window's
        where += f" AND (NOT {fits} OR {tx_day} >= {start})" if bud002 else f" AND {in_bud001}"
    over_window = f"{fits} AND {tx_day} >= {start}"
    # Each row's tests are computed once (OFFSET 0 keeps the planner from copying them into every use).
    rows = (f"SELECT t.user_id, {tx_day} AS day, t.category, t.spent_at,\n"
            f"                   CASE WHEN {in_bud001} THEN (t.amount * 100)::bigint END AS cents,\n"
            f"                   ({dated} AND NOT {fits}) AS unfit,\n"
            f"                   CASE WHEN {dated} AND {over_window} THEN (t.amount * 100)::bigint END AS over_cents\n"
            f"              FROM {rel('transactions')} t{zone_join} WHERE {where} OFFSET 0")
    # A sum of bigints keeps a 128-bit state per key outside the hash table; a sum of int4 keeps a bigint
    # inside it. So each cents value is split in two int4 (high and low 31 bits), summed apart and joined
    # per key: exact, and the grouping stays in memory longer.
    over_split = _split("over_cents") if since_differs else "NULL::int AS over_cents_hi, NULL::int AS over_cents_lo"
    stacked = (f"SELECT user_id, day, category, 1 AS tx, spent_at, {_split('cents')}, unfit,\n"
               f"                   {over_split},\n"
               f"                   over_cents IS NOT NULL AS over_row,\n"
               "                   NULL::int AS spent_hi, NULL::int AS spent_lo, NULL::numeric AS spent_odd,\n"
               "                   false AS plan\n"
               f"              FROM ({rows}) r")
    if bud001:
        spent = "coalesce(t.spent_amount, 0)"
        plan_day = plan_day_sql("t.date")
        cents = f"CASE WHEN {_whole_cents(spent)} THEN ({spent} * 100)::bigint END"
        stacked += f"""
            UNION ALL
            SELECT t.user_id, {plan_day}, t.category, 0, NULL, NULL, NULL, false, NULL, NULL, false,
                   ({cents} >> 31)::int, ({cents} & 2147483647)::int,
                   CASE WHEN NOT {_whole_cents(spent)} THEN {spent} END, true
              FROM {rel('daily_plan')} t WHERE t.date >= {since} AND {plan_day} >= {bud001_start}"""
    total = "(total_hi * 2147483648 + total_lo)"
    spent_sum = "coalesce(spent_hi * 2147483648 + spent_lo, 0)"
    over_total = "(over_hi * 2147483648 + over_lo)" if since_differs else total
    drift = (f"((total_hi IS NOT NULL OR planned) AND (NOT coalesce(planned, false) OR CASE WHEN odd IS NULL "
             f"THEN coalesce({total}, 0) <> {spent_sum} "
             f"ELSE coalesce({total}, 0) <> {spent_sum} + odd * 100 END) "
             f"AND abs(coalesce({total}, 0)) < {CENTS_LIMIT})") if bud001 else "false"
    over = f"(user_id IS NOT NULL AND abs({over_total}) >= {CENTS_LIMIT})" if bud002 else "false"
    unfit_rows = "unfit" if bud002 else "0"
    candidate = ("(n > 2 OR (n = 2 AND date_trunc('second', first) = date_trunc('second', last)))"
                 if dup003 else "false")
    flagged = f"""
WITH flagged AS MATERIALIZED (
    SELECT user_id, day, category, first, last, {drift} AS drift, planned, {over} AS over, over_n,
           {unfit_rows} AS unfit, {candidate} AS candidate
      FROM (SELECT user_id, day, category, count(*) FILTER (WHERE tx = 1) AS n,
                   min(spent_at) AS first, max(spent_at) AS last,
                   sum(cents_hi) AS total_hi, sum(cents_lo) AS total_lo,
                   sum(over_cents_hi) AS over_hi, sum(over_cents_lo) AS over_lo,
                   count(*) FILTER (WHERE over_row) AS over_n, count(*) FILTER (WHERE unfit) AS unfit,
                   sum(spent_hi) AS spent_hi, sum(spent_lo) AS spent_lo, sum(spent_odd) AS odd,
                   bool_or(plan) AS planned
              FROM ({stacked}) stacked
             GROUP BY user_id, day, category) g
     WHERE {drift} OR {over} OR {unfit_rows} > 0 OR {candidate})"""
    parts = [_bud001_part() if bud001 else "NULL, NULL",
             _bud002_part(ctx, live, dated, fits, zone_join, tx_day, start) if bud002 else "NULL, NULL",
             _dup003_part(ctx, live) if dup003 else "NULL, NULL, NULL"]
    ctes = f"{flagged},\n{_dup003_ctes(ctx, live)}" if dup003 else flagged
    return f"{ctes}\nSELECT {', '.join(parts)}"


def _bud001_part() -> str:
    # As bud001_sql: a planned key's smallest plan id, else user@day/category; the first keys in key order.
    return f"""(SELECT count(*) FROM flagged WHERE drift),
       ARRAY(SELECT coalesce(
                 CASE WHEN b.planned THEN (
                     SELECT min(p.id::text) FROM {rel('daily_plan')} p
                      WHERE p.user_id = b.user_id AND p.category IS NOT DISTINCT FROM b.category
                        AND p.date >= (b.day::timestamp AT TIME ZONE 'UTC')
                        AND p.date < ((b.day + 1)::timestamp AT TIME ZONE 'UTC')) END,
                 b.user_id::text || '@' || b.day || '/' || coalesce(b.category, ''))
               FROM (SELECT * FROM flagged WHERE drift ORDER BY user_id, day, category LIMIT %(n)s) b)"""


def _bud002_part(ctx: CheckContext, live: str, dated: str, fits: str, zone_join: str, tx_day: str,
                 start: str) -> str:
    # The sample as bud002_sql's: the smallest ids of the named rows, read only when some are named.
    return f"""(SELECT coalesce(sum(unfit), 0) + coalesce(sum(over_n) FILTER (WHERE over), 0) FROM flagged),
       CASE WHEN EXISTS (SELECT 1 FROM flagged WHERE unfit > 0 OR over) THEN ARRAY(
           SELECT t.id::text FROM {rel('transactions')} t{zone_join}
            WHERE {live}t.spent_at IS NOT NULL AND {dated}
              AND (NOT {fits} OR ({fits} AND {tx_day} >= {start} AND EXISTS (
                   SELECT 1 FROM flagged o WHERE o.over AND o.user_id = t.user_id AND o.day = {tx_day}
                      AND o.category IS NOT DISTINCT FROM t.category)))
            ORDER BY t.id LIMIT %(n)s) END"""


def _dup003_ctes(ctx: CheckContext, live: str) -> str:
    """Gives DUP003's CTEs over the candidate keys: their live rows grouped by DUP003's own key."""
    created = ctx.schema.creation_column("transactions")
    window = ctx.options.since_seconds
    recent = (f" AND max(t.created) >= now() - make_interval(secs => {int(window)})"
              if window is not None and created else "")
    columns = "t.user_id, t.category, t.amount, t.id, date_trunc('second', t.spent_at) AS second"
    columns += f", t.{ident(created)} AS created" if created else ""
    # Every row of a key lies between its first and last spent_at, and every row of that user and category
    # in that span belongs to the key (a day is one span of time): each row is read once.
    span = "t.spent_at >= c.first AND t.spent_at <= c.last AND t.category IS NOT DISTINCT FROM c.category"
    return f"""matched AS (
    SELECT {columns} FROM flagged c
      JOIN {rel('transactions')} t ON t.user_id = c.user_id AND {span}
     WHERE c.candidate{" AND " + live.removesuffix(" AND ") if live else ""}
    UNION ALL  -- a NULL user_id is a key value like any other column's (the join above cannot match it)
    SELECT {columns} FROM flagged c
      JOIN {rel('transactions')} t ON t.user_id IS NULL AND {span}
     WHERE c.candidate AND c.user_id IS NULL{" AND " + live.removesuffix(" AND ") if live else ""}),
duplicated AS MATERIALIZED (
    SELECT count(*) AS n, max(t.id::text) AS last_id
      FROM matched t
     GROUP BY t.user_id, t.category, t.amount, t.second
    HAVING count(*) > 1{recent})"""


def _dup003_part(ctx: CheckContext, live: str) -> str:
    return """(SELECT coalesce(sum(n - 1), 0) FROM duplicated), (SELECT count(*) FROM duplicated),
       ARRAY(SELECT last_id FROM duplicated ORDER BY last_id LIMIT %(n)s)"""


def evaluate(ctx: CheckContext, rules: tuple[Rule, ...]) -> list[Outcome]:
    """Gives the outcomes of the chosen rules of this unit, from one statement."""
    if [r.code for r in rules] == ["DUP003"]:  # apart (see FAMILY): its own statement, streaming the index
        return _dup003_alone(ctx, rules[0])
    codes = frozenset(r.code for r in rules)
    # Its keys are about as many as its rows: a parallel partial grouping only doubles the work (and the
    # memory), so this statement runs serially; the second core runs the other passes meanwhile.
    ctx.cur.execute("SELECT current_setting('max_parallel_workers_per_gather'), "
                    "set_config('max_parallel_workers_per_gather', '0', true)")
    before = ctx.cur.fetchone()
    assert before is not None
    ctx.cur.execute(shared_sql(ctx, codes), {"n": ctx.options.sample})
    row = ctx.cur.fetchone()
    ctx.cur.execute("SELECT set_config('max_parallel_workers_per_gather', %s, true)", (before[0],))
    assert row is not None
    b1, b1_sample, b2, b2_sample, d3, d3_groups, d3_sample = row
    out: list[Outcome] = []
    for rule in rules:
        if rule.code == "DUP003":
            out.append(Outcome("DUP003", "transactions", int(d3), int(d3_groups), _sample(d3, d3_sample)))
        elif rule.code == "BUD001":
            out.append(Outcome("BUD001", "daily_plan", int(b1), sample=_sample(b1, b1_sample),
                               column="spent_amount"))
        else:
            out.append(Outcome("BUD002", "transactions", int(b2), sample=_sample(b2, b2_sample), column="amount"))
    return out


def _dup003_alone(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    assert rule.evaluate is not None
    return rule.evaluate(ctx, rule)


def _sample(count: int, sample: list[str] | None) -> tuple[str, ...]:
    return tuple(sample or ()) if count else ()


# Measured on the seed (scale 0.25, PostgreSQL 15): with DUP003's candidates the one grouping must hold every
# live row of all time plus first/last spent_at per key, and took longer than DUP003's own statement (which
# streams ix_transactions_user_id_spent_at and groups only the seconds that repeat) and BUD001 together on two
# connections. So DUP003 runs apart, its own keys-first statement; BUD001 and BUD002 share the grouping.
FAMILY = Family("transaction_keys", RULES, evaluate, apart=("DUP003",))
