"""Constraints judged by their definition, not their name: a same-named CHECK or unique key that says something
else is not the migration's (a hand-made `ck_goals_progress_le_100 CHECK (progress <= 100000)`).

Both sides of a CHECK are compared through the planner: `EXPLAIN` of a filter by the expected expression and
by the constraint's own (pg_get_expr) gives the same text exactly when the server reads them as the same
expression (`IN (…)` and `= ANY (ARRAY[…])`, casts and parentheses alike). EXPLAIN reads nothing and writes
nothing, so this runs in read-only transactions and on a standby too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .connection import CATALOG_SEARCH_PATH

Run = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]

# 0024's CHECK constraints: name -> (table, expression).
CHECKS_0024: dict[str, tuple[str, str]] = {
    "ck_goals_saved_le_target": ("goals", "saved_amount <= target_amount"),
    "ck_goals_progress_le_100": ("goals", "progress <= 100"),
    "ck_goals_target_positive": ("goals", "target_amount > 0"),
    "ck_transactions_amount_nonnegative": ("transactions", "amount >= 0 OR category IN ('refund', 'income')"),
    "ck_daily_plan_planned_nonnegative": ("daily_plan", "planned_amount >= 0"),
}

UNIQUE_0023 = "uq_daily_plan_user_date_category"
UNIQUE_COLUMNS = ("user_id", "date", "category")


def on_cursor(cur: Any) -> Run:
    """Gives a Run over a psycopg cursor."""
    def run(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur.execute(statement, params or None)
        return list(cur.fetchall()) if cur.description else []
    return run


def _plan(run: Run, table: str, expression: str) -> str:
    rows = run(f'EXPLAIN (VERBOSE, COSTS OFF) SELECT 1 FROM public."{table}" WHERE {expression}', ())
    return "\n".join(str(r[0]) for r in rows)


def check_mismatch(run: Run, name: str) -> str | None:
    """Gives how an existing 0024 CHECK differs from the migration's ("CHECK (…), not CHECK (…)"), or None when it
    is absent or says the same."""
    # Under the catalog's path alone (for this transaction, then put back): with public on the path a
    # constraint bound to an operator of public (`public.>=(numeric, integer)`) reads as plain `amount >= 0`, and
    # the expected expression would be planned with that same operator: the two would look alike.
    previous = run("SELECT current_setting('search_path')", ())
    run("SELECT set_config('search_path', %s, true)", (CATALOG_SEARCH_PATH,))
    try:
        return _check_mismatch(run, name)
    finally:
        run("SELECT set_config('search_path', %s, true)", (previous[0][0] if previous else "public",))


def _check_mismatch(run: Run, name: str) -> str | None:
    table, expected = CHECKS_0024[name]
    rows = run("SELECT contype::text, pg_get_expr(conbin, conrelid) FROM pg_constraint "
               "WHERE conname = %s AND conrelid = to_regclass(%s)", (name, f"public.{table}"))
    if not rows:
        return None
    kind, actual = rows[0]
    if kind != "c" or not actual:
        return f"{name} on {table} is not a CHECK constraint"
    if _plan(run, table, actual) == _plan(run, table, expected):
        return None
    return f"{name} on {table} is CHECK ({actual}), not CHECK ({expected})"


def unique_mismatch(run: Run) -> str | None:
    """Gives how an existing uq_daily_plan_user_date_category (a constraint, or an index of that name) differs from
    0023's UNIQUE NULLS NOT DISTINCT (user_id, date, category) without a predicate, or None."""
    rows = run("""SELECT con.contype::text,
                         array(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, i)
                                 JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.i),
                         x.indisunique, x.indpred IS NOT NULL OR x.indexprs IS NOT NULL,
                         coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false),
                         x.indrelid = to_regclass('public.daily_plan')
                    FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace
                    JOIN pg_index x ON x.indexrelid = i.oid
                    LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.conname = i.relname
                   WHERE n.nspname = 'public' AND i.relname = %s""", (UNIQUE_0023,))
    if not rows:
        other = run("SELECT contype::text FROM pg_constraint WHERE conname = %s "
                    "AND conrelid = to_regclass('public.daily_plan')", (UNIQUE_0023,))
        return f"{UNIQUE_0023} on daily_plan is not a unique key" if other else None
    kind, columns, unique, partial, nulls_not_distinct, on_daily_plan = rows[0]
    expected = f"UNIQUE NULLS NOT DISTINCT ({', '.join(UNIQUE_COLUMNS)})"
    if not on_daily_plan:
        return f"{UNIQUE_0023} is an index of another table, not {expected} of daily_plan"
    shape = f"({', '.join(columns)})" + (" with a predicate or expressions" if partial else "")
    if kind not in (None, "u") or not unique:
        return f"{UNIQUE_0023} on daily_plan is not unique: {shape}, not {expected}"
    if tuple(columns) != UNIQUE_COLUMNS or partial:
        return f"{UNIQUE_0023} on daily_plan is on {shape}, not {expected}"
    if not nulls_not_distinct:
        nullable = run("SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'public.daily_plan'::regclass "
                       "AND attname = 'category'", ())
        if nullable and nullable[0][0]:
            return f"{UNIQUE_0023} on daily_plan lets NULL categories repeat (not NULLS NOT DISTINCT)"
    return None
