"""A test-only oracle: one naive, obviously correct query per rule code, written from the rule semantics.

It shares nothing with the seed (nor with the rule catalogue): it is what the seed's truth is checked
against. "live" = deleted_at IS NULL; days are UTC days; the budget window is the last 30 days.
"""

from __future__ import annotations

import psycopg

from mita_integrity.check.rules.iso4217 import CODES

LIVE_TX = "deleted_at IS NULL"
_ISO = ", ".join(f"'{c}'" for c in sorted(CODES))
_UUID = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"

COUNTS: dict[str, str] = {
    "NUL001": "SELECT count(*) FROM users WHERE email IS NULL OR btrim(email) = ''",
    "NUL004": "SELECT count(*) FROM transactions WHERE category IS NULL OR btrim(category) = ''",
    "NUL006": "SELECT count(*) FROM transactions WHERE spent_at IS NULL",
    "NUL008": "SELECT count(*) FROM goals WHERE title IS NULL OR btrim(title) = ''",
    "REF001": "SELECT count(*) FROM transactions t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)",
    "REF003": "SELECT count(*) FROM daily_plan t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)",
    "REF004": "SELECT count(*) FROM subscriptions t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)",
    "REF005": "SELECT count(*) FROM habits t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)",
    "TIM001": "SELECT count(*) FROM transactions WHERE created_at > updated_at",
    "TIM002": "SELECT count(*) FROM goals WHERE created_at > last_updated",
    "TIM003": f"SELECT count(*) FROM transactions WHERE {LIVE_TX} AND spent_at > now() + interval '1 day'",
    "TIM004": "SELECT count(*) FROM goals WHERE completed_at < created_at",
    "TIM005": "SELECT count(*) FROM transactions WHERE deleted_at < created_at",
    "GOL001": "SELECT count(*) FROM goals WHERE deleted_at IS NULL AND target_amount > 0 "
              "AND abs(progress - least(saved_amount / target_amount * 100, 100)) > 0.01",
    "GOL002": "SELECT count(*) FROM goals WHERE deleted_at IS NULL AND progress >= 100 AND status <> 'completed'",
    "GOL003": "SELECT count(*) FROM goals WHERE deleted_at IS NULL AND saved_amount > target_amount",
    "GOL004": "SELECT count(*) FROM goals WHERE deleted_at IS NULL AND saved_amount < 0",
    "GOL005": "SELECT count(*) FROM goals WHERE target_amount <= 0",
    "GOL006": "SELECT count(*) FROM goals WHERE status NOT IN ('active', 'completed', 'paused', 'cancelled')",
    "AMT001": f"SELECT count(*) FROM transactions WHERE {LIVE_TX} AND currency IS NOT NULL "
              f"AND currency NOT IN ({_ISO})",
    "AMT002": f"SELECT count(*) FROM transactions WHERE {LIVE_TX} AND amount = 0",
    "AMT003": f"SELECT count(*) FROM transactions WHERE {LIVE_TX} AND amount < 0 "
              "AND lower(category) NOT IN ('income', 'refund', 'transfer')",
    "AMT004": f"SELECT count(*) FROM transactions WHERE {LIVE_TX} AND amount > 1000000",
    "AMT005": "SELECT count(*) FROM daily_plan WHERE planned_amount < 0",
    "AMT006": "SELECT count(*) FROM daily_plan WHERE spent_amount < 0",
    "SDL002": "SELECT count(*) FROM transactions t JOIN goals g ON g.id = t.goal_id "
              "WHERE t.deleted_at IS NULL AND g.deleted_at IS NOT NULL",
    "USR001": "SELECT count(*) FROM users WHERE has_onboarded AND (monthly_income IS NULL OR monthly_income = 0)",
    "USR002": "SELECT count(*) FROM users WHERE has_onboarded AND (annual_income IS NULL OR annual_income = 0)",
    "USR003": "SELECT count(*) FROM users u WHERE has_onboarded AND NOT EXISTS "
              "(SELECT 1 FROM transactions t WHERE t.user_id = u.id AND t.deleted_at IS NULL)",
    "CAL001": "SELECT count(*) FROM daily_plan WHERE date <> date_trunc('day', date AT TIME ZONE 'UTC') "
              "AT TIME ZONE 'UTC'",
    "CAL002": "SELECT count(*) FROM daily_plan WHERE spent_amount > planned_amount AND planned_amount > 0",
    # Mismatched (user, day, category) keys in the window: plan sum vs live spending, either side missing.
    "BUD001": """
WITH tx AS (SELECT user_id, (spent_at AT TIME ZONE 'UTC')::date AS day, category, sum(amount) AS total
              FROM transactions WHERE deleted_at IS NULL AND spent_at IS NOT NULL GROUP BY 1, 2, 3),
     pl AS (SELECT user_id, (date AT TIME ZONE 'UTC')::date AS day, category,
                   sum(coalesce(spent_amount, 0)) AS spent
              FROM daily_plan GROUP BY 1, 2, 3),
     keys AS (SELECT user_id, day, category FROM tx UNION SELECT user_id, day, category FROM pl)
SELECT count(*) FROM keys k
  LEFT JOIN tx ON tx.user_id = k.user_id AND tx.day = k.day AND tx.category IS NOT DISTINCT FROM k.category
  LEFT JOIN pl ON pl.user_id = k.user_id AND pl.day = k.day AND pl.category IS NOT DISTINCT FROM k.category
 WHERE k.day >= (now() AT TIME ZONE 'UTC')::date - 30
   AND ((tx.total IS NOT NULL AND pl.spent IS NULL)
        OR coalesce(tx.total, 0) <> coalesce(pl.spent, 0))""",
}

# Duplicates: (surplus rows, duplicated keys). Blank e-mails are NUL001's, not shared addresses.
GROUPED: dict[str, str] = {
    "DUP001": "SELECT count(*) AS n FROM users WHERE btrim(email) <> '' GROUP BY lower(btrim(email))",
    "DUP002": "SELECT count(*) AS n FROM daily_plan GROUP BY user_id, (date AT TIME ZONE 'UTC')::date, category",
    "DUP003": "SELECT count(*) AS n FROM transactions WHERE deleted_at IS NULL AND spent_at IS NOT NULL "
              "GROUP BY user_id, category, amount, date_trunc('second', spent_at)",
}

PER_TABLE: dict[str, dict[str, str]] = {
    "REF010": {t: f"SELECT count(*) FROM {t} x WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = x.user_id)"
               for t in ("moods", "push_tokens", "budget_advice", "notification_logs")},
    "REF011": {t: f"SELECT count(*) FROM {t} x WHERE NOT (x.user_id ~ {_UUID}) "
                  f"OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id::text = x.user_id)"
               for t in ("expenses", "user_answers", "user_profiles")},
    "SDL001": {t: f"SELECT count(*) FROM {t} WHERE deleted_at IS NOT NULL"
               for t in ("transactions", "goals", "installments")},
}
# GROUP BY treats NULL categories as one group, which is exactly DUP002's IS NOT DISTINCT FROM.


def _one(cur: psycopg.Cursor, query: str) -> int:
    cur.execute(query)
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def measure(conn: psycopg.Connection) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Gives every code's count (and "DUP00x.groups"), and the per-table counts, as the oracle sees them."""
    counts: dict[str, int] = {}
    by_table: dict[str, dict[str, int]] = {}
    with conn.cursor() as cur:
        cur.execute("SET TimeZone TO 'UTC'")
        for code, query in COUNTS.items():
            counts[code] = _one(cur, query)
        for code, query in GROUPED.items():
            cur.execute(f"SELECT coalesce(sum(n - 1), 0), count(*) FILTER (WHERE n > 1) FROM ({query}) g")
            row = cur.fetchone()
            assert row is not None
            counts[code], counts[f"{code}.groups"] = int(row[0]), int(row[1])
        for code, tables in PER_TABLE.items():
            by_table[code] = {t: _one(cur, q) for t, q in tables.items()}
            counts[code] = sum(by_table[code].values())
    conn.rollback()
    return counts, by_table
