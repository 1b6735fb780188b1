"""The rules keyed by (user, day, category) of the live transactions: BUD001, BUD002 and DUP003, one unit.

Each needs a key of the transactions that is, or refines, (user_id, day, category): BUD001 compares a key's
spending with its plan rows, BUD002 names the rows of keys whose total the plan cannot hold, and DUP003's
key (user, category, amount, second) refines it (one user's second lies in one day). Alone, BUD001 and
BUD002 each grouped the transactions themselves; here one statement groups them once and both read their
answer from it:

- the live transactions are read in user_id order (ix_transactions_user_id; the seed's and production's
  rows lie nearly in that order), each user's few rows sorted in memory (an incremental sort) and grouped
  as a stream by (user_id, day, category), every rule's per-row test computed once;
- the plan rows of BUD001's window are grouped the same way (duplicate plan rows of a key summed), and the
  two streams meet in a merge full join: a key on either side without a partner counts, as in spending.py;
- BUD001: a key of its window whose spending differs from its plan (as `keyed` in spending.py);
- BUD002: the rows that do not fit the plan (all time), and the fitting rows of the window's keys whose
  total the plan cannot hold (as bud002_sql).

A hash grouping of as many keys as rows outgrew work_mem and spilled (the old BUD001: 21 batches at scale
0.25); the streams keep memory at a few kilobytes per user whatever the size. NULL is a key value: the
category is matched as (is it NULL, its text or ''), and transactions without a user are a second, small
branch (a merge join cannot match NULL user ids).

DUP003 can be answered from the same grouping (`shared_sql` with DUP003: only keys with more than two rows,
or two rows in the same second, can hold a duplicate; their rows are read between the key's first and last
spent_at and grouped by DUP003's own key), and tests prove that form exact too. But it must then group every
live row of all time with three more aggregates, and measured on the seed (with the earlier hash grouping;
not measured again since the streams) it took longer than DUP003's own keys-first statement (spending.py:
it streams ix_transactions_user_id_spent_at for the seconds that repeat) running on the other connection
at the same time; so the unit runs DUP003 apart (FAMILY.apart).

Amounts are summed in cents (bigint): an amount that fits the plan has at most two decimals and is below
10^10, so its cents are exact. A plan value that is not a whole number of cents (NaN, a wider column) is
summed as numeric beside them, so the comparison stays exact.

The psql script keeps each rule's own statement (spending.py, plan_limits.py); tests/test_transaction_keys.py
proves this unit gives exactly what those statements give, rule by rule, in every combination.
"""

from __future__ import annotations

from collections.abc import Callable

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


def shared_sql(ctx: CheckContext, codes: frozenset[str], within: Callable[[str, str], str] | None = None) -> str:
    """Gives the one statement evaluating the chosen ones of BUD001, BUD002 and DUP003.

    It yields (BUD001 keys, BUD001 sample, BUD002 rows, BUD002 sample, DUP003 surplus, DUP003 groups, DUP003
    sample); a rule not chosen reads as NULL. Samples are bounded (LIMIT) and taken only when the rule fails.

    `within` (check --incremental's hook): given the statement's user_id branch predicate and the table, SQL on
    its row t keeping whole keys only; the statement then also yields the violating (user_id, day, category)
    keys of BUD001 and of BUD002 (two arrays of JSON triples).
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
    dated = "t.user_id IS NOT NULL AND t.amount IS NOT NULL"

    def restrict(user: str, table: str = "transactions") -> str:  # the {user} branch, and --incremental's within
        return user if within is None else f"{user} AND {within(user, table)}"
    # Each row's tests are computed once, in a subquery ordered by user_id (an index serves that order, so the
    # grouping above it sorts only each user's few rows); the aggregates read them as columns.
    inner_where = f"{live}t.spent_at IS NOT NULL"
    outer_where = "true"
    if not (bud002 or dup003):  # BUD001 alone reads its window's fitting rows (the bound an index can serve)
        inner_where += f" AND {tx_bound}"
        outer_where = "r.fits AND r.bud001_window"
    elif not dup003:  # BUD002: the rows that do not fit (all time), and the fitting rows of its window
        outer_where = "(NOT r.fits OR r.bud002_window)"
    rows = (f"SELECT t.user_id, {tx_day} AS day, t.category IS NULL AS cat_null, coalesce(t.category, '') AS cat, "
            f"t.spent_at, t.amount,\n"
            f"                   {fits} AS fits, {dated} AS dated,\n"
            f"                   {tx_bound} AND {tx_day} >= {bud001_start} AS bud001_window,\n"
            f"                   {tx_day} >= {start} AS bud002_window\n"
            f"              FROM {rel('transactions')} t{zone_join} WHERE {inner_where} AND {{user}} "
            "ORDER BY t.user_id")
    cents = "(r.amount * 100)::bigint"
    over_rows = "r.dated AND r.fits AND r.bud002_window"
    tx_columns = [
        f"sum({cents}) FILTER (WHERE r.fits AND r.bud001_window) AS total",
        "count(*) FILTER (WHERE r.dated AND NOT r.fits) AS unfit" if bud002 else "0 AS unfit",
        f"count(*) FILTER (WHERE {over_rows}) AS over_n" if bud002 else "0 AS over_n",
        # BUD002's window differs from BUD001's only under --since: then its own sum.
        f"sum({cents}) FILTER (WHERE {over_rows}) AS over_total" if since_differs
        else "NULL::numeric AS over_total",
        "count(*) AS n, min(r.spent_at) AS first, max(r.spent_at) AS last" if dup003
        else "0 AS n, NULL::timestamptz AS first, NULL::timestamptz AS last",
    ]
    # A key's category as two columns a merge join can match, NULL included: (is it NULL, its text or '').
    key = "t.category IS NULL AS cat_null, coalesce(t.category, '') AS cat"
    tx = (f"SELECT r.user_id, r.day, r.cat_null, r.cat, {', '.join(tx_columns)}\n"
          f"              FROM ({rows}) r WHERE {outer_where} GROUP BY 1, 2, 3, 4")
    tx_out = "x.n, x.first, x.last, x.total, x.unfit, x.over_n, x.over_total"
    if bud001:
        spent = "coalesce(t.spent_amount, 0)"
        plan_day = plan_day_sql("t.date")
        plan = (f"SELECT t.user_id, {plan_day} AS day, {key}, "
                f"sum(({spent} * 100)::bigint) FILTER (WHERE {_whole_cents(spent)}) AS spent, "
                f"sum({spent}) FILTER (WHERE NOT {_whole_cents(spent)}) AS odd\n"
                f"              FROM {rel('daily_plan')} t WHERE t.date >= {since} AND {plan_day} >= {bud001_start} "
                "AND {user} GROUP BY 1, 2, 3, 4")
        on = "x.day = p.day AND x.cat_null = p.cat_null AND x.cat = p.cat"

        def joined(user: str, same_user: str) -> str:
            return (f"SELECT coalesce(x.user_id, p.user_id) AS user_id, coalesce(x.day, p.day) AS day,\n"
                    "                   coalesce(x.cat_null, p.cat_null) AS cat_null, coalesce(x.cat, p.cat) AS cat,\n"
                    f"                   {tx_out}, p.spent, p.odd, p.day IS NOT NULL AS planned\n"
                    f"              FROM ({tx.format(user=restrict(user))}) x\n"
                    f"              FULL JOIN ({plan.format(user=restrict(user, 'daily_plan'))}) p ON {same_user}{on}")

        keyed = (joined("t.user_id IS NOT NULL", "x.user_id = p.user_id AND ")
                 + "\n            UNION ALL  -- a NULL user_id is a key value (the merge above cannot match it)\n"
                 + f"            {joined('t.user_id IS NULL', '')}")
    else:
        keyed = (f"SELECT x.user_id, x.day, x.cat_null, x.cat, {tx_out}, NULL::numeric AS spent, "
                 f"NULL::numeric AS odd, false AS planned FROM ({tx.format(user=restrict('true'))}) x")
    drift = (f"((total IS NOT NULL OR planned) AND (NOT planned OR coalesce(total, 0) <> coalesce(spent, 0) "
             f"+ coalesce(odd * 100, 0)) AND abs(coalesce(total, 0)) < {CENTS_LIMIT})") if bud001 else "false"
    over_total = "over_total" if since_differs else "total"
    over = f"(user_id IS NOT NULL AND abs({over_total}) >= {CENTS_LIMIT})" if bud002 else "false"
    candidate = ("(n > 2 OR (n = 2 AND date_trunc('second', first) = date_trunc('second', last)))"
                 if dup003 else "false")
    flagged = f"""
WITH flagged AS MATERIALIZED (
    SELECT user_id, day, CASE WHEN NOT cat_null THEN cat END AS category, first, last, {drift} AS drift,
           planned, {over} AS over, over_n, unfit, {candidate} AS candidate
      FROM ({keyed}) keyed
     WHERE {drift} OR {over} OR unfit > 0 OR {candidate})"""
    parts = [_bud001_part() if bud001 else "NULL, NULL",
             _bud002_part(ctx, live, restrict(dated), fits, zone_join, tx_day, start) if bud002 else "NULL, NULL",
             _dup003_part(ctx, live) if dup003 else "NULL, NULL, NULL"]
    ctes = f"{flagged},\n{_dup003_ctes(ctx, live)}" if dup003 else flagged
    if within is not None:
        parts.append("ARRAY(SELECT json_build_array(user_id, day, category)::text FROM flagged WHERE drift), "
                     "ARRAY(SELECT json_build_array(user_id, day, category)::text FROM flagged "
                     "WHERE over OR unfit > 0)")
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
    # The sample as bud002_sql's: the smallest ids of the named rows, read only when some are named. The
    # overflowing keys are matched as one hashed list (category as NULL-or-text, so a NULL one matches), and
    # the named ids are collected before they are ordered: ordering by the primary key while filtering would
    # walk the whole table in index order.
    return f"""(SELECT coalesce(sum(unfit), 0) + coalesce(sum(over_n) FILTER (WHERE over), 0) FROM flagged),
       CASE WHEN EXISTS (SELECT 1 FROM flagged WHERE unfit > 0 OR over) THEN ARRAY(
           SELECT n.id::text FROM (
               SELECT t.id FROM {rel('transactions')} t{zone_join}
                WHERE {live}t.spent_at IS NOT NULL AND {dated}
                  AND (NOT {fits} OR ({fits} AND {tx_day} >= {start}
                       AND (t.user_id, {tx_day}, t.category IS NULL, coalesce(t.category, '')) IN (
                           SELECT o.user_id, o.day, o.category IS NULL, coalesce(o.category, '')
                             FROM flagged o WHERE o.over)))
                OFFSET 0) n
            ORDER BY n.id LIMIT %(n)s) END"""


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
    # Its keys are about as many as its rows, so a hash grouping outgrows work_mem and spills (and a parallel
    # partial one doubles that). Both tables are read in user_id order instead (their user_id indexes), each
    # user's few rows sorted in memory (an incremental sort), grouped as a stream and merged by key: memory
    # stays small whatever the size. The planner underestimates the keys, so it is told; the second core runs
    # the other passes meanwhile. The settings are put back for the passes that follow on this connection.
    ctx.cur.execute("SELECT current_setting('max_parallel_workers_per_gather'), current_setting('enable_hashagg'), "
                    "set_config('max_parallel_workers_per_gather', '0', true), "
                    "set_config('enable_hashagg', 'off', true)")
    before = ctx.cur.fetchone()
    assert before is not None
    keeping = ctx.kept is not None and bool(codes & {"BUD001", "BUD002"})  # the keys too, in the same statement
    ctx.cur.execute(shared_sql(ctx, codes, (lambda branch, table: "true") if keeping else None),
                    {"n": ctx.options.sample})
    row = ctx.cur.fetchone()
    ctx.cur.execute("SELECT set_config('max_parallel_workers_per_gather', %s, true), "
                    "set_config('enable_hashagg', %s, true)", (before[0], before[1]))
    assert row is not None
    b1, b1_sample, b2, b2_sample, d3, d3_groups, d3_sample = row[:7]
    if keeping and ctx.kept is not None:
        ctx.kept.update({code: list(found or ()) for code, found in (("BUD001", row[7]), ("BUD002", row[8]))
                         if code in codes})
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


# DUP003 runs apart, its own keys-first statement on the other connection (see the module's docstring).
FAMILY = Family("transaction_keys", RULES, evaluate, apart=("DUP003",))
