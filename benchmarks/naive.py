"""The naive way to run the catalogue, the check's baseline (c): one hand-written query per rule.

What someone would write in a psql script without the tool: every rule its own statement over its own
scan, orphans as `col NOT IN (SELECT id FROM parent)`, duplicates as a GROUP BY … HAVING count(*) > 1,
BUD001 as the two groupings FULL-compared. Written here from the rules' meaning, not generated from the
catalogue, so the baseline stays the same while the engine changes. The per-table rules (REF010, REF011,
SDL001) find their tables in the live catalog, as the check does.

`queries` refuses to run a catalogue that has a rule it has no query for (a new rule must get one here),
and `disagreements` compares its counts with a check's JSON report: a naive query that counts something
else would make the comparison meaningless.
"""

from __future__ import annotations

from typing import Any

from mita_integrity.check.rules.iso4217 import CODES

LIVE = "deleted_at IS NULL"
UUID_TEXT = "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"
ISO = ", ".join(f"'{c}'" for c in sorted(CODES))
WINDOW_START = "(now() AT TIME ZONE 'UTC')::date - 30"  # BUD001's budget window: the last 30 days
# The tables a specific orphan rule covers; REF010 is every other table with a uuid user_id.
SPECIFIC_USER_TABLES = ("transactions", "goals", "daily_plan", "subscriptions", "habits", "habit_completions")


def _orphans(table: str, column: str, parent: str) -> str:
    return (f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL "
            f"AND {column} NOT IN (SELECT id FROM {parent})")


def _surplus(grouped: str) -> str:
    return f"SELECT coalesce(sum(n - 1), 0) FROM ({grouped} HAVING count(*) > 1) d"


FIXED: dict[str, str] = {
    "NUL001": "SELECT count(*) FROM users WHERE email IS NULL OR btrim(email) = ''",
    "NUL002": "SELECT count(*) FROM users WHERE password_hash IS NULL",
    "NUL003": "SELECT count(*) FROM transactions WHERE user_id IS NULL",
    "NUL004": "SELECT count(*) FROM transactions WHERE category IS NULL OR btrim(category) = ''",
    "NUL005": "SELECT count(*) FROM transactions WHERE amount IS NULL",
    "NUL006": "SELECT count(*) FROM transactions WHERE spent_at IS NULL",
    "NUL007": "SELECT count(*) FROM goals WHERE user_id IS NULL",
    "NUL008": "SELECT count(*) FROM goals WHERE title IS NULL OR btrim(title) = ''",
    "NUL009": "SELECT count(*) FROM goals WHERE target_amount IS NULL",
    "NUL010": "SELECT count(*) FROM daily_plan WHERE user_id IS NULL",
    "NUL011": "SELECT count(*) FROM daily_plan WHERE date IS NULL",
    "REF001": _orphans("transactions", "user_id", "users"),
    "REF002": _orphans("goals", "user_id", "users"),
    "REF003": _orphans("daily_plan", "user_id", "users"),
    "REF004": _orphans("subscriptions", "user_id", "users"),
    "REF005": _orphans("habits", "user_id", "users"),
    "REF006": _orphans("habit_completions", "habit_id", "habits"),
    "REF007": _orphans("habit_completions", "user_id", "users"),
    "REF008": _orphans("transactions", "goal_id", "goals"),
    "DUP001": _surplus("SELECT count(*) AS n FROM users WHERE btrim(email) <> '' GROUP BY lower(btrim(email))"),
    "DUP002": _surplus("SELECT count(*) AS n FROM daily_plan GROUP BY user_id, date::date, category"),
    "DUP003": _surplus(f"SELECT count(*) AS n FROM transactions WHERE {LIVE} AND spent_at IS NOT NULL "
                       "GROUP BY user_id, category, amount, date_trunc('second', spent_at)"),
    "TIM001": "SELECT count(*) FROM transactions WHERE created_at > updated_at",
    "TIM002": "SELECT count(*) FROM goals WHERE created_at > last_updated",
    "TIM003": f"SELECT count(*) FROM transactions WHERE {LIVE} AND spent_at > now() + interval '1 day'",
    "TIM004": "SELECT count(*) FROM goals WHERE completed_at < created_at",
    "TIM005": "SELECT count(*) FROM transactions WHERE deleted_at < created_at",
    # A FULL JOIN needs an equality: NULL categories meet as chr(1), which no category is.
    "BUD001": f"""
        SELECT count(*) FROM
          (SELECT user_id, spent_at::date AS day, coalesce(category, chr(1)) AS cat, sum(amount) AS total
             FROM transactions WHERE {LIVE} AND spent_at IS NOT NULL AND spent_at::date >= {WINDOW_START}
            GROUP BY 1, 2, 3) tx
          FULL JOIN
          (SELECT user_id, date::date AS day, coalesce(category, chr(1)) AS cat,
                  sum(coalesce(spent_amount, 0)) AS spent
             FROM daily_plan WHERE date::date >= {WINDOW_START} GROUP BY 1, 2, 3) pl
          ON pl.user_id = tx.user_id AND pl.day = tx.day AND pl.cat = tx.cat
         WHERE pl.day IS NULL OR coalesce(tx.total, 0) <> pl.spent""",
    "GOL001": f"SELECT count(*) FROM goals WHERE {LIVE} AND target_amount > 0 "
              "AND abs(progress - least(saved_amount / target_amount * 100, 100)) > 0.01",
    "GOL002": f"SELECT count(*) FROM goals WHERE {LIVE} AND progress >= 100 AND status IS DISTINCT FROM 'completed'",
    "GOL003": f"SELECT count(*) FROM goals WHERE {LIVE} AND saved_amount > target_amount",
    "GOL004": f"SELECT count(*) FROM goals WHERE {LIVE} AND saved_amount < 0",
    "GOL005": "SELECT count(*) FROM goals WHERE target_amount <= 0",
    "GOL006": "SELECT count(*) FROM goals WHERE status IS NULL "
              "OR status NOT IN ('active', 'completed', 'paused', 'cancelled')",
    "AMT001": f"SELECT count(*) FROM transactions WHERE {LIVE} AND currency IS NOT NULL AND currency NOT IN ({ISO})",
    "AMT002": f"SELECT count(*) FROM transactions WHERE {LIVE} AND amount = 0",
    "AMT003": f"SELECT count(*) FROM transactions WHERE {LIVE} AND amount < 0 "
              "AND coalesce(lower(category), '') NOT IN ('income', 'refund', 'transfer')",
    "AMT004": f"SELECT count(*) FROM transactions WHERE {LIVE} AND amount > 1000000",
    "AMT005": "SELECT count(*) FROM daily_plan WHERE planned_amount < 0",
    "AMT006": "SELECT count(*) FROM daily_plan WHERE spent_amount < 0",
    # The rows the plan cannot hold (the keys whose total overflows, which BUD002 also names, are left out here:
    # a naive script would not look for them, and the seed makes none).
    "BUD002": f"SELECT count(*) FROM transactions WHERE {LIVE} AND spent_at IS NOT NULL AND user_id IS NOT NULL "
              "AND amount IS NOT NULL AND NOT (amount <> 'NaN' AND abs(amount) < 10000000000 "
              "AND amount = round(amount, 2) AND (category IS NULL OR char_length(category) <= 100))",
    "SDL002": "SELECT count(*) FROM transactions t JOIN goals g ON g.id = t.goal_id "
              "WHERE t.deleted_at IS NULL AND g.deleted_at IS NOT NULL",
    "USR001": "SELECT count(*) FROM users WHERE has_onboarded AND (monthly_income IS NULL OR monthly_income = 0)",
    "USR002": "SELECT count(*) FROM users WHERE has_onboarded AND (annual_income IS NULL OR annual_income = 0)",
    # Not an orphan rule: NOT IN over five million transaction ids would be a nested loop nobody waits for.
    "USR003": f"SELECT count(*) FROM users u WHERE has_onboarded "
              f"AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.user_id = u.id AND t.{LIVE})",
    "CAL001": "SELECT count(*) FROM daily_plan WHERE date::time <> '00:00'",
    "CAL002": "SELECT count(*) FROM daily_plan WHERE spent_amount > planned_amount AND planned_amount > 0",
    # Section 11 reads only the catalog (milliseconds): what a script would ask, not the rules' exact detail.
    "SCH001": """SELECT count(*) FROM information_schema.columns c WHERE c.table_schema = 'public'
                   AND c.column_name = 'user_id' AND c.data_type = 'uuid' AND c.table_name <> 'users'
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f'
                                     AND f.conrelid = ('public.' || quote_ident(c.table_name))::regclass
                                     AND f.confrelid = 'public.users'::regclass)""",
    "SCH002": "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated",
    "SCH003": """SELECT count(*) FROM (SELECT 1) x WHERE NOT EXISTS (SELECT 1 FROM pg_indexes
                   WHERE tablename = 'daily_plan' AND indexdef LIKE 'CREATE UNIQUE%(user_id, date, category)%')""",
    "SCH004": "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND NOT convalidated",
    "SCH005": """SELECT count(*) FROM (SELECT 1) x WHERE NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'public.transactions'::regclass AND NOT tgisinternal AND tgenabled <> 'D')""",
    "SCH006": """SELECT count(*) FROM pg_constraint con WHERE con.contype = 'f' AND NOT EXISTS
                   (SELECT 1 FROM pg_index x WHERE x.indrelid = con.conrelid AND x.indkey[0] = con.conkey[1])""",
    "SCH007": "SELECT count(*) FROM pg_index WHERE NOT indisvalid",
    "SCH008": """SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'public.users'::regclass
                   AND confdeltype IN ('a', 'r')""",
    # Both version tables (standalone keeps the chain's state in integrity.alembic_version), where they exist.
    "SCH009": "SELECT count(*) FROM pg_class WHERE oid IN (to_regclass('public.alembic_version'), "
              "to_regclass('integrity.alembic_version'))",
}

CATALOG_ONLY = {code for code in FIXED if code.startswith("SCH")}  # not compared: not the rules' exact counts


def _tables(cur: Any, column: str, types: tuple[str, ...]) -> list[str]:
    cur.execute("""SELECT table_name FROM information_schema.columns
                    WHERE table_schema = 'public' AND column_name = %s AND data_type = ANY(%s)
                    ORDER BY table_name""", (column, list(types)))
    return [row[0] for row in cur.fetchall()]


def queries(cur: Any, codes: set[str]) -> list[tuple[str, str, str]]:
    """Gives (code, table or '', SQL) for every rule in codes; raises when one has no naive query."""
    per_table = {
        "REF010": [(t, _orphans(t, "user_id", "users")) for t in _tables(cur, "user_id", ("uuid",))
                   if t != "users" and t not in SPECIFIC_USER_TABLES],
        "REF011": [(t, f"SELECT count(*) FROM {t} WHERE CASE WHEN user_id ~ {UUID_TEXT} "
                       "THEN user_id::uuid NOT IN (SELECT id FROM users) ELSE true END")
                   for t in _tables(cur, "user_id", ("character varying", "text"))],
        "SDL001": [(t, f"SELECT count(*) FROM {t} WHERE deleted_at IS NOT NULL")
                   for t in _tables(cur, "deleted_at", ("timestamp with time zone", "timestamp without time zone"))],
    }
    missing = codes - set(FIXED) - set(per_table)
    if missing:
        raise SystemExit(f"benchmarks/naive.py has no query for {', '.join(sorted(missing))}: write one")
    out = [(code, "", FIXED[code]) for code in sorted(codes & set(FIXED))]
    out += [(code, table, sql) for code in sorted(codes & set(per_table)) for table, sql in per_table[code]]
    return out


def run(cur: Any, statements: list[tuple[str, str, str]]) -> dict[str, int]:
    """Runs the statements one by one (session in UTC, like the check); gives each code's total count."""
    cur.execute("SET TimeZone TO 'UTC'")
    counts: dict[str, int] = {}
    for code, _table, sql in statements:
        cur.execute(sql)
        row = cur.fetchone()
        counts[code] = counts.get(code, 0) + int(row[0] if row else 0)
    return counts


def disagreements(naive: dict[str, int], report: dict[str, Any]) -> tuple[int, list[str]]:
    """Gives how many rules were compared with a check's report, and those whose counts differ, as text.

    A rule's check count is summed over its tables; rules the check skipped or ended in error are left out.
    """
    checked: dict[str, int] = {}
    for result in report["results"]:
        if result["status"] in ("pass", "fail", "guaranteed"):
            checked[result["code"]] = checked.get(result["code"], 0) + int(result["count"] or 0)
    compared = sorted(code for code in naive if code not in CATALOG_ONLY and code in checked)
    return len(compared), [f"{code} naive {naive[code]:,} vs check {checked[code]:,}" for code in compared
                           if naive[code] != checked[code]]
