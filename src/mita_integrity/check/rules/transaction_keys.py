"""The rules keyed by (user, day, category): BUD001, BUD002 and DUP003, one unit; DUP002 joins it when it runs.

Each needs a key of the transactions that is, or refines, (user_id, day, category): BUD001 compares a key's
spending with its plan rows, BUD002 names the rows of keys whose total the plan cannot hold, and DUP003's
key (user, category, amount, second) refines it (one user's second lies in one day). DUP002 (declared in
duplicates.py) groups the plan rows by the very same key, all time. Alone, each grouped its table itself;
here one statement groups them once and each reads its answer from it:

- the live transactions and the plan rows are read in user_id order (their user_id indexes; the seed's and
  production's rows lie nearly in that order: pg_stats.correlation of user_id 0.999 on transactions and 0.89
  on daily_plan in the seed), the two ordered reads merged (a Merge Append: each side is a subquery with
  its own ORDER BY, which is what lets the planner merge them), each user's few rows sorted in memory (an
  incremental sort) and grouped as ONE stream by (user_id, day, category). GROUP BY matches NULL user ids
  and categories as equal, so no key needs a branch of its own;
- every rule's per-row test is computed once per row (fits_sql), the windows' bounds once per statement
  (InitPlans), and the grouping keeps only the aggregates the rules need;
- BUD001: a key of its window whose spending differs from its plan (as `keyed` in spending.py);
- BUD002: the rows that do not fit the plan (all time; their ids collected by the grouping, they are the
  violations), and the fitting rows of the window's keys whose total the plan cannot hold (as bud002_sql;
  read afterwards through the user_id index, for those rare keys only);
- DUP002: a key with more than one plan row (all time), as dup002_sql; with a `guaranteed` DUP002 (0023's key
  and midnight check) the plan rows of BUD001's window alone are read, as before;
- at head (merges: 0023's key and midnight check, no NULL user ids or transaction categories) a plan row is the
  only one of its key, so only the transactions are grouped and the plan rows meet them in a merge full join,
  read in the unique index's order (at scale 1, 3.8 s instead of 4.3-4.6 s for half the users).

Measured at scale 0.25 (BENCHMARKS.md, issue 13): the old shape (two groupings, of each table, met in a merge
full join, and DUP002's own grouping of daily_plan on the other connection) cost about 5 s of one connection
plus 1-1.7 s of the other; one stream costs less than the two groupings alone, and DUP002 no longer reads
daily_plan a second time. A hash grouping of as many keys as rows outgrew work_mem and spilled (the old
BUD001: 21 batches at scale 0.25), and a full sort of 2.3 million rows spilled to disk at 64 MB; the stream
keeps memory at a few kilobytes per user whatever the size.

With two connections the grouping is split (split) into ranges of user ids, two passes per connection in the
same snapshot (engine.PARTS_PER_CONNECTION): a key belongs to one user, so the parts' counts add up, and the
engine merges their samples.
The other passes (DUP003, the row passes) are shared out between the connections as each becomes free.

DUP003 can be answered from the same grouping (`shared_sql` with DUP003: only keys with more than two rows,
or two rows in the same second, can hold a duplicate; their rows are read between the key's first and last
spent_at and grouped by DUP003's own key), and tests prove that form exact too. But it must then group every
live row of all time with three more aggregates, and measured on the seed it took longer than DUP003's own
keys-first statement (spending.py: it streams ix_transactions_user_id_spent_at for the seconds that repeat);
so the unit runs DUP003 apart (FAMILY.apart).

Amounts are summed as numeric, exactly as the rules' own statements sum them (an earlier form summed cents as
bigint; `(amount * 100)::bigint` cost more per row than the numeric sum it replaced).

The psql script keeps each rule's own statement (spending.py, plan_limits.py, duplicates.py);
tests/test_transaction_keys.py and tests/test_transaction_keys_split.py prove this unit, whole and in parts,
gives exactly what those statements give, rule by rule, in every combination.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ...findings import Status
from .base import Family, Rule, literal, rel
from .context import CheckContext, Outcome, ident, planner_settings
from .dayboundary import plan_day_sql, transaction_day_sql, user_zones_sql
from .duplicates import DUP002, guaranteed_unique
from .plan_limits import AMOUNT_LIMIT, BUD002, CATEGORY_MAX, fits_plan_sql, total_fits_sql
from .spending import BUD001, DUP003

RULES: tuple[Rule, ...] = (DUP003, BUD001, BUD002)
BORROWED: tuple[Rule, ...] = (DUP002,)  # declared in duplicates.py; grouped here when a budget rule runs too


def fits_sql() -> str:
    """Gives plan_limits.fits_plan_sql's test of t, cheaper per row: the same answer for every value.

    Bounds compared without abs(); an amount of at most two decimals (its scale) is whole cents without
    round(); a category of at most 100 bytes has at most 100 characters without counting them (multibyte).
    Each cheap test comes first, and AND / OR stop at the first answer.
    """
    return (f"coalesce(t.amount <> 'NaN' AND t.amount < {AMOUNT_LIMIT} AND t.amount > -{AMOUNT_LIMIT} "
            "AND (scale(t.amount) <= 2 OR t.amount = round(t.amount, 2)) "
            f"AND (t.category IS NULL OR octet_length(t.category) <= {CATEGORY_MAX} "
            f"OR char_length(t.category) <= {CATEGORY_MAX}), false)")


def _once(expression: str) -> str:
    """Gives a scalar subquery of `expression`: an InitPlan the server computes once, not once per row."""
    return f"(SELECT {expression})"


Part = tuple[str | None, str | None]  # user_id bounds [low, high) of one part; high None: NULL user ids too


def _user_ranges(part: Part | None) -> list[str]:
    """Gives the conditions on t.user_id of a part's reads, each one an index can serve (the NULL user ids,
    which no range holds, are read by one more branch of the last part)."""
    if part is None:
        return ["true"]
    low, high = part
    bounds = ([f"t.user_id >= {literal(low)}"] if low is not None else []) + \
        ([f"t.user_id < {literal(high)}"] if high is not None else [])
    return [" AND ".join(bounds) or "t.user_id IS NOT NULL"] + (["t.user_id IS NULL"] if high is None else [])


def shared_sql(ctx: CheckContext, codes: frozenset[str], part: Part | None = None,
               within: Callable[[str, str], str] | None = None,
               sources: Callable[[str], list[str]] | None = None) -> str:
    """Gives the one statement evaluating the chosen ones of BUD001, BUD002, DUP002 and DUP003.

    It yields (BUD001 keys, BUD001 sample, BUD002 rows, BUD002 sample, DUP003 surplus, DUP003 groups, DUP003
    sample, DUP002 surplus, DUP002 groups, DUP002 sample); a rule not chosen reads as NULL. Samples are
    bounded (LIMIT) and taken only when the rule fails. With `part`, only the keys of the users in that range
    (see split).

    `within` (check --incremental's hook, and a recorded check's): given a read's user_id condition and its
    table, SQL on its row t keeping whole keys only; the statement then also yields the violating (user_id,
    day, category) keys of BUD001 and of BUD002 (two arrays of JSON triples), and the ids of every plan row of
    DUP002's duplicated keys (what a recorded run keeps of DUP002; NULL when DUP002 is not chosen), and the ids
    of every row of DUP003's duplicated groups (NULL when DUP003 is not chosen).

    `sources` (check --incremental's re-read of chosen keys): given a table, the FROM items that replace its
    plain read (each joins `<table> t` to a set of keys, so that the keys drive index probes); each must give
    whole keys, and no row twice. The statement then yields the keys and members as with `within`.
    """
    schema, options = ctx.schema, ctx.options
    bud001, bud002, dup003, dup002 = ("BUD001" in codes, "BUD002" in codes, "DUP003" in codes,
                                      "DUP002" in codes)
    live = "t.deleted_at IS NULL AND " if schema.has("transactions.deleted_at") else ""
    by_zone = options.day_boundary == "user-timezone"
    zone_join = f" LEFT JOIN ({user_zones_sql()}) z ON z.user_id = t.user_id" if by_zone else ""
    tx_day = transaction_day_sql("t.spent_at", "coalesce(z.zone, 'UTC')" if by_zone else None)
    start = f"((now() AT TIME ZONE 'UTC')::date - {int(options.budget_days)})"  # BUD002's window
    bud001_start = start
    if options.since_seconds is not None:
        bud001_start = (f"greatest({start}, ((now() - make_interval(secs => {int(options.since_seconds)})) "
                        "AT TIME ZONE 'UTC')::date)")
    # The windows' bounds are computed once (InitPlans), not for each of millions of rows.
    b1, b2 = _once(bud001_start), _once(start)
    # A bound on the raw column an index can serve: written out (not an InitPlan), so that the planner, which
    # folds now() when it estimates, knows how many rows it keeps and reads an index in user_id order.
    since = f"(({bud001_start})::timestamp AT TIME ZONE 'UTC')"
    since_differs = options.since_seconds is not None and bud002
    tx_bound = f"t.spent_at >= {since} - interval '1 day'" if by_zone else f"t.spent_at >= {since}"
    plan_side = bud001 or dup002
    tx_side = bud001 or bud002 or dup003
    budget_only = bud001 and not (bud002 or dup003 or dup002)
    merged = sources is None and merges(ctx, codes) is not None  # chosen keys (sources): the general form
    created = schema.creation_column("daily_plan") if dup002 else None
    # Each side's rows, with every test a rule makes of a row computed once: (name, transactions, plan).
    columns = [
        ("user_id", "t.user_id", "t.user_id"),
        ("day", tx_day, plan_day_sql("t.date")),
        ("category", "t.category::text", "t.category::text"),
        ("is_tx", "true", "false"),
        ("fits", fits_sql(), "false"),
        ("dated", "t.user_id IS NOT NULL AND t.amount IS NOT NULL", "false"),
        ("amount", "t.amount::numeric", "NULL::numeric"),
        ("spent", "NULL::numeric", "coalesce(t.spent_amount, 0)::numeric"),
    ]
    if bud002:
        columns.append(("id", "t.id", "NULL"))
    if dup003:
        columns.append(("spent_at", "t.spent_at", "NULL::timestamptz"))
    if dup002 and options.since_seconds is not None and created:
        columns.append(("created", "NULL::timestamptz", f"t.{ident(created)}::timestamptz"))
    tx_where = f"{live}t.spent_at IS NOT NULL"
    plan_where = "true"
    if budget_only:  # BUD001 alone reads only its window's fitting rows (a bound an index can serve)
        tx_where = f"{live}{tx_bound} AND {fits_sql()} AND {tx_day} >= {b1}"
    if bud001 and not dup002:  # the plan rows of BUD001's window; DUP002 needs every plan row
        plan_where = f"t.date >= {since} AND {plan_day_sql('t.date')} >= {b1}"
    def restrict(users: str, table: str) -> str:  # a read's user range, and --incremental's `within`
        return users if within is None else f"{users} AND {within(users, table)}"

    named = ", ".join(f"{tx} AS {name}" for name, tx, _ in columns)
    plan_named = ", ".join(f"{plan} AS {name}" for name, _, plan in columns)
    if sources is None:
        tx_reads = [f"{rel('transactions')} t{zone_join} WHERE {tx_where} AND {restrict(users, 'transactions')}"
                    for users in _user_ranges(part)]
        plan_reads = [f"{rel('daily_plan')} t WHERE {plan_where} AND {restrict(users, 'daily_plan')}"
                      for users in _user_ranges(part)]
    else:  # the chosen keys' rows, each key's found through the index by its own probe
        assert part is None and within is None
        tx_reads = [f"{src}{zone_join} WHERE {tx_where}" for src in sources("transactions")]
        plan_reads = [f"{src} WHERE {plan_where}" for src in sources("daily_plan")]
    leaves = ([f"(SELECT {named}\n               FROM {read} ORDER BY t.user_id)" for read in tx_reads]
              if tx_side else [])
    if plan_side:
        leaves += [f"(SELECT {plan_named}\n               FROM {read} ORDER BY t.user_id)" for read in plan_reads]
    if not leaves:  # no key to read: an empty stream of the same shape
        leaves = [f"(SELECT {plan_named}\n               FROM {rel('daily_plan')} t WHERE false)"]
    stacked = "\n             UNION ALL\n             ".join(leaves)
    window = "r.day >= " + b1
    aggregates = [
        f"sum(r.amount) FILTER (WHERE r.fits AND {window}) AS total" if bud001 or bud002 else "NULL::numeric AS total",
        f"sum(r.spent) FILTER (WHERE NOT r.is_tx AND {window}) AS spent" if bud001 else "NULL::numeric AS spent",
        # The rows that do not fit are few (they are the violations): their ids, whose number is their count.
        "array_agg(r.id) FILTER (WHERE r.dated AND NOT r.fits) AS unfit_ids" if bud002 else "NULL::uuid[] AS unfit_ids",
        # BUD002's window differs from BUD001's only under --since: then its own sum.
        f"sum(r.amount) FILTER (WHERE r.dated AND r.fits AND r.day >= {b2}) AS over_total" if since_differs
        else "NULL::numeric AS over_total",
        "count(*) FILTER (WHERE r.is_tx) AS n, min(r.spent_at) AS first, max(r.spent_at) AS last" if dup003
        else "0 AS n, NULL::timestamptz AS first, NULL::timestamptz AS last",
        "count(*) FILTER (WHERE NOT r.is_tx) AS plan_n" if dup002 else "0 AS plan_n",
        "max(r.created) AS plan_created" if any(c[0] == "created" for c in columns)
        else "NULL::timestamptz AS plan_created",
    ]
    # The rows of both tables arrive merged in user_id order (each side read in that order by its user_id
    # index: the Merge Append of the two ordered subqueries); each user's few rows are sorted in memory (an
    # incremental sort) and grouped as a stream. GROUP BY matches NULL user ids and categories as equal.
    # Each aggregate costs a call per row, so the grouping keeps as few as the rules need: a key is planned
    # when a plan row of the window gave it a (non-NULL) spent sum; an overflowing key's rows (rarer still)
    # are counted afterwards through the user_id index (_bud002_part).
    # OFFSET 0 keeps `keyed` a subquery of its own: else the WHERE of `flagged` below is pushed into its HAVING,
    # every mention of total or spent there is an aggregate of its own (with its own copy of the window's
    # bound, so the server cannot tell them equal), and each row is summed five times over (measured at scale 1
    # on PostgreSQL 16: half of the transactions' keys, 7.2 s with it pushed down, 5.1 s kept apart).
    keyed = (f"SELECT r.user_id, r.day, r.category, {', '.join(aggregates)}\n"
             f"          FROM ({stacked}) r\n         GROUP BY r.user_id, r.day, r.category OFFSET 0")
    if merged:  # the plan rows unique per key: only the transactions grouped, the plan rows met in index order
        keyed = _merged_keyed(columns, [aggregates[0], *aggregates[2:4]], tx_where, plan_where,
                              [restrict(_user_ranges(part)[0], table) for table in ("transactions", "daily_plan")])
    planned = "spent IS NOT NULL" if bud001 else "false"
    unfit = "coalesce(cardinality(unfit_ids), 0)"
    drift = (f"((total IS NOT NULL OR {planned}) AND (spent IS NULL OR coalesce(total, 0) <> spent) "
             f"AND {total_fits_sql('coalesce(total, 0)')})") if bud001 else "false"
    over_total = "over_total" if since_differs else "total"
    over = f"(user_id IS NOT NULL AND NOT {total_fits_sql(over_total)})" if bud002 else "false"
    candidate = ("(n > 2 OR (n = 2 AND date_trunc('second', first) = date_trunc('second', last)))"
                 if dup003 else "false")
    duplicated = "plan_n > 1" if dup002 else "false"
    if dup002 and options.since_seconds is not None:
        duplicated += (f" AND plan_created >= now() - make_interval(secs => {int(options.since_seconds)})"
                       if created else " AND false")
    flagged = f"""
WITH flagged AS MATERIALIZED (
    SELECT user_id, day, category, first, last, {drift} AS drift, {planned} AS planned, {over} AS over,
           {unfit} AS unfit, unfit_ids, {candidate} AS candidate, {duplicated} AS duplicated, plan_n
      FROM ({keyed}) keyed
     WHERE {drift} OR {over} OR unfit_ids IS NOT NULL OR {candidate} OR ({duplicated}))"""
    parts = [_bud001_part() if bud001 else "NULL, NULL",
             _bud002_part() if bud002 else "NULL, NULL",
             _dup003_part(ctx, live) if dup003 else "NULL, NULL, NULL",
             _dup002_part(ctx) if dup002 else "NULL, NULL, NULL"]
    ctes = flagged
    if bud002:
        ctes += f",\n{_over_rows(live, zone_join, tx_day)}"
    if dup003:
        ctes += f",\n{_dup003_ctes(ctx, live)}"
    if within is not None or sources is not None:
        parts.append("ARRAY(SELECT json_build_array(user_id, day, category)::text FROM flagged WHERE drift), "
                     "ARRAY(SELECT json_build_array(user_id, day, category)::text FROM flagged "
                     "WHERE over OR unfit > 0), " + (_dup002_members() if dup002 else "NULL::text[]") + ", "
                     + ("ARRAY(SELECT unnest(ids) FROM duplicated)" if dup003 else "NULL::text[]"))
    return f"{ctes}\nSELECT {', '.join(parts)}"


def merges(ctx: CheckContext, codes: frozenset[str]) -> str | None:
    """Gives why BUD001 (and BUD002) may meet the plan rows by a merge join, or None: the general grouping then.

    When 0023's key and midnight check make every plan row the only one of its (user_id, day, category) key
    (duplicates.guaranteed_unique), a key's plan row needs no grouping: the transactions alone are grouped (in
    user_id order, as the general statement reads them), by their day's midnight, and meet the plan rows read
    in the key's index order in a merge full join. A join matches no NULL, where GROUP BY matches NULLs as
    equal: so only when neither side's user_id nor the transactions' category can be NULL (a plan row with a
    NULL category then has no transaction to meet in either form). Not with the user's time zone (a day is
    then no UTC midnight), nor with DUP002 or DUP003 in the statement (they need the general grouping).
    """
    schema = ctx.schema
    if ("BUD001" not in codes or codes & {"DUP002", "DUP003"} or ctx.options.day_boundary == "user-timezone"
            or not all(schema.not_null(t, c) for t, c in (("transactions", "user_id"), ("transactions", "category"),
                                                           ("daily_plan", "user_id")))):
        return None
    kinds = schema.columns.get("transactions", {}), schema.columns.get("daily_plan", {})
    if kinds[0]["user_id"][0] != kinds[1]["user_id"][0] or \
            kinds[1].get("date", ("", False))[0] != "timestamp with time zone":
        return None
    return guaranteed_unique(ctx)


def _merged_keyed(columns: list[tuple[str, str, str]], aggregates: list[str], tx_where: str, plan_where: str,
                  users: list[str]) -> str:
    """Gives `keyed` of the merge (see merges): the transactions grouped by (user_id, midnight of their day,
    category) in that order, met by the plan rows of the window read in the order of their unique index (its
    columns as they are: a cast of the category would hide that order from the planner). The aggregates are the
    general statement's total, unfit_ids and over_total (the transactions' own); a key's spent is its plan row's."""
    named = ", ".join(f"{'t.category' if name == 'category' else tx} AS {name}" for name, tx, _ in columns
                      if name in ("user_id", "day", "category", "fits", "dated", "amount", "id"))
    return f"""SELECT coalesce(x.user_id, p.user_id) AS user_id,
                 coalesce((x.midnight AT TIME ZONE 'UTC')::date, {plan_day_sql('p.date')}) AS day,
                 coalesce(x.category, p.category)::text AS category, x.total, p.spent, x.unfit_ids, x.over_total,
                 0 AS n, NULL::timestamptz AS first, NULL::timestamptz AS last, 0 AS plan_n,
                 NULL::timestamptz AS plan_created
            FROM (SELECT r.user_id, (r.day::timestamp AT TIME ZONE 'UTC') AS midnight, r.category,
                         {', '.join(aggregates)}
                    FROM (SELECT {named}
                            FROM {rel('transactions')} t WHERE {tx_where} AND {users[0]} ORDER BY t.user_id) r
                   GROUP BY r.user_id, 2, r.category) x
            FULL JOIN (SELECT t.user_id, t.date, t.category, coalesce(t.spent_amount, 0)::numeric AS spent
                         FROM {rel('daily_plan')} t WHERE {plan_where} AND {users[1]}) p
              ON p.user_id = x.user_id AND p.date = x.midnight AND p.category = x.category"""


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


def _over_rows(live: str, zone_join: str, tx_day: str) -> str:
    """Gives BUD002's CTE `over_rows`: the fitting rows of the keys whose total the plan cannot hold (rare),
    read through the user_id index for each such key (OFFSET 0 keeps the lookup a nested loop: the planner,
    which cannot tell how few keys overflow, would otherwise sort the whole table for a merge join)."""
    return f"""over_rows AS MATERIALIZED (
    SELECT x.id FROM flagged o CROSS JOIN LATERAL (
        SELECT t.id FROM {rel('transactions')} t{zone_join}
         WHERE t.user_id = o.user_id AND {live}t.spent_at IS NOT NULL AND t.amount IS NOT NULL
           AND {fits_plan_sql()} AND {tx_day} = o.day AND t.category::text IS NOT DISTINCT FROM o.category
        OFFSET 0) x
     WHERE o.over)"""


def _bud002_part() -> str:
    # As bud002_sql: the rows that do not fit, and the fitting rows of the keys that overflow; its sample the
    # smallest ids of both. The rows that do not fit were collected by the grouping itself: no second scan.
    return """(SELECT coalesce(sum(unfit), 0) FROM flagged) + (SELECT count(*) FROM over_rows),
       ARRAY(SELECT n.id::text FROM (
                 SELECT unnest(f.unfit_ids) AS id FROM flagged f WHERE f.unfit_ids IS NOT NULL
                 UNION ALL
                 SELECT o.id FROM over_rows o) n
              ORDER BY n.id LIMIT %(n)s)"""


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
    SELECT count(*) AS n, max(t.id::text) AS last_id, array_agg(t.id::text) AS ids
      FROM matched t
     GROUP BY t.user_id, t.category, t.amount, t.second
    HAVING count(*) > 1{recent})"""


def _dup003_part(ctx: CheckContext, live: str) -> str:
    return """(SELECT coalesce(sum(n - 1), 0) FROM duplicated), (SELECT count(*) FROM duplicated),
       ARRAY(SELECT last_id FROM duplicated ORDER BY last_id LIMIT %(n)s)"""


# The plan rows of a flagged key k (user, UTC day, category; NULL user and category as values), read by the
# user_id and date of the plan's index: DUP002's sample and the members a recorded run keeps.
_PLAN_ROWS_OF_KEY = f"""{rel('daily_plan')} p
                  WHERE (p.user_id = k.user_id OR (k.user_id IS NULL AND p.user_id IS NULL))
                    AND p.date >= (k.day::timestamp AT TIME ZONE 'UTC')
                    AND p.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC')
                    AND p.category::text IS NOT DISTINCT FROM k.category"""


def _dup002_part(ctx: CheckContext) -> str:
    # As dup002_sql's: the surplus ids (all but the keeper: earliest created, then smallest id) of at most
    # --sample duplicated keys, each read by its user and day.
    created = "p.created_at NULLS LAST, " if ctx.schema.has("daily_plan.created_at") else ""
    return f"""(SELECT coalesce(sum(plan_n - 1), 0) FROM flagged WHERE duplicated),
       (SELECT count(*) FROM flagged WHERE duplicated),
       ARRAY(SELECT x.id FROM (SELECT * FROM flagged WHERE duplicated ORDER BY user_id, day, category
                                LIMIT %(n)s) k
              CROSS JOIN LATERAL (
                 SELECT p.id::text AS id FROM {_PLAN_ROWS_OF_KEY}
                  ORDER BY {created}p.id OFFSET 1) x
              LIMIT %(n)s)"""


def _dup002_members() -> str:
    # Every plan row of each duplicated key (as duplicates.dup002_members_sql reads them): read by its user and
    # day, only for the duplicated keys (few), so a recorded run does not group daily_plan a second time.
    return f"""ARRAY(SELECT p.id::text FROM flagged k
              CROSS JOIN LATERAL (
                 SELECT p.id FROM {_PLAN_ROWS_OF_KEY}
                  OFFSET 0) p
             WHERE k.duplicated)"""


# What the statement's streams need of the planner (see evaluate), each setting put back afterwards.
STREAMED = (("max_parallel_workers_per_gather", "0"), ("enable_hashagg", "off"), ("enable_hashjoin", "off"))


def streamed(cur: Any, more: tuple[tuple[str, str], ...] = ()) -> AbstractContextManager[None]:
    """Runs the block with the settings of STREAMED (and `more`), and puts the session's back."""
    return planner_settings(cur, STREAMED + more)


def evaluate(ctx: CheckContext, rules: tuple[Rule, ...], part: Part | None = None) -> list[Outcome]:
    """Gives the outcomes of the chosen rules of this unit (and DUP002, when the engine lends it), from one
    statement; with `part`, those of the keys of that range of users (see split)."""
    out: list[Outcome] = []
    if any(r.code == "DUP002" for r in rules) and (constraint := guaranteed_unique(ctx)):
        out.append(Outcome("DUP002", "daily_plan", reason=f"guaranteed by {constraint}", status=Status.GUARANTEED))
        rules = tuple(r for r in rules if r.code != "DUP002")
    if part is None and [r.code for r in rules] in (["DUP003"], ["DUP002"]):  # alone: its own statement
        return out + _alone(ctx, rules[0])
    if not rules:
        return out
    codes = frozenset(r.code for r in rules)
    # Its keys are about as many as its rows, so a hash grouping outgrows work_mem and spills (and a parallel
    # partial one doubles that). Both tables are read in user_id order instead (their user_id indexes), each
    # user's few rows sorted in memory (an incremental sort) and grouped as a stream: memory stays small
    # whatever the size. The planner underestimates the keys, so it is told; the second core runs the other
    # passes (or the other part) meanwhile. With the plan rows unique per key (merges) the plan side meets the
    # grouped transactions in a merge join: a hash join would build a table of millions of plan rows. The
    # settings are put back for the passes that follow.
    keeping = ctx.kept is not None and bool(codes & {"BUD001", "BUD002", "DUP002"})  # the keys too, at once
    with streamed(ctx.cur):
        ctx.cur.execute(shared_sql(ctx, codes, part, (lambda users, table: "true") if keeping else None),
                        {"n": ctx.options.sample})
        row = ctx.cur.fetchone()
    assert row is not None
    if keeping and ctx.kept is not None:  # a part's keys are added to the other part's (check/incremental/)
        for code, found in (("BUD001", row[10]), ("BUD002", row[11]), ("DUP002", row[12])):
            if code in codes:
                ctx.kept.setdefault(code, []).extend(found or ())
    found = outcomes(row, codes)
    return out + [found[r.code] for r in rules]


def outcomes(row: tuple[Any, ...], codes: frozenset[str]) -> dict[str, Outcome]:
    """Gives the chosen rules' outcomes from the first ten columns of shared_sql's row."""
    b1, b1_sample, b2, b2_sample, d3, d3_groups, d3_sample, d2, d2_groups, d2_sample = row[:10]
    out = {
        "DUP003": lambda: Outcome("DUP003", "transactions", int(d3), int(d3_groups), _sample(d3, d3_sample)),
        "DUP002": lambda: Outcome("DUP002", "daily_plan", int(d2), int(d2_groups), _sample(d2, d2_sample)),
        "BUD001": lambda: Outcome("BUD001", "daily_plan", int(b1), sample=_sample(b1, b1_sample),
                                  column="spent_amount"),
        "BUD002": lambda: Outcome("BUD002", "transactions", int(b2), sample=_sample(b2, b2_sample), column="amount"),
    }
    return {code: make() for code, make in out.items() if code in codes}


def split(ctx: CheckContext, rules: tuple[Rule, ...], parts: int) -> list[Part]:
    """Gives `parts` ranges of user ids of about as many transactions each, or [] when they cannot be told.

    Every key belongs to one user, so each range's keys are grouped apart, on its own connection in the same
    snapshot, and the counts add up (the samples are merged: see FAMILY). The bounds come from the planner's
    histogram of transactions.user_id: any bounds give the same results, good ones only balance the work.
    Both tables must hold the user id in the same type, so that a bound orders them alike.
    """
    columns = ctx.schema.columns
    kind = columns.get("transactions", {}).get("user_id", ("", False))[0]
    if parts < 2 or not kind or columns.get("daily_plan", {}).get("user_id", (kind, False))[0] != kind:
        return []
    ctx.cur.execute("SELECT s.histogram_bounds::text::text[] FROM pg_catalog.pg_stats s WHERE s.schemaname = "
                    "'public' AND s.tablename = 'transactions' AND s.attname = 'user_id'")
    row = ctx.cur.fetchone()
    bounds: list[str] = list(row[0]) if row and row[0] else []
    if len(bounds) < 2 * parts:
        return []
    pivots = [bounds[len(bounds) * i // parts] for i in range(1, parts)]
    return list(zip([None, *pivots], [*pivots, None], strict=True))


def _alone(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    assert rule.evaluate is not None
    return rule.evaluate(ctx, rule)


def _sample(count: int, sample: list[str] | None) -> tuple[str, ...]:
    return tuple(sample or ()) if count else ()


# DUP003 runs apart, its own keys-first statement on the other connection (see the module's docstring);
# DUP002 (the duplicates family's) joins the budget rules' grouping when one of them runs (engine.plan).
# With two connections, the shared grouping is split into ranges of users (split), two passes each; BUD002's
# sample is the smallest ids of the parts' samples, the others' the first keys in key order (the parts' in turn).
FAMILY = Family("transaction_keys", RULES, evaluate, apart=("DUP003",), borrows=tuple(r.code for r in BORROWED),
                split=split, evaluate_part=evaluate, sample_by_id=("BUD002",))
