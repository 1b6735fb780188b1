"""Rows of users who no longer exist, in the tables without a foreign key (REF004, REF005, REF010, REF011)."""

from __future__ import annotations

from .context import DAY, SeedRun
from .hashing import text_array
from .plan import NOT_UUIDS, ORPHAN_ROWS

# table: (columns after id and user_id, their SQL values; o.i numbers the orphan rows)
_UUID_TABLES: dict[str, tuple[str, str]] = {
    "subscriptions": ("platform, receipt, status, created_at, plan, starts_at, expires_at",
                      "'ios', jsonb_build_object('store', 'ios', 'product_id', 'mita.premium.monthly'), 'active', "
                      "to_timestamp({t0}), 'monthly', to_timestamp({t0}), to_timestamp({t0} + {month})"),
    "habits": ("title, description, created_at", "'Track expenses daily', NULL, to_timestamp({t0}) AT TIME ZONE 'UTC'"),
    "moods": ("date, mood", "(to_timestamp({t0}) AT TIME ZONE 'UTC')::date, 'calm'"),
    "push_tokens": ("token, created_at, platform",
                    "'ExponentPushToken[' || md5('{seed}:orphan-push:' || o.i) || ']', to_timestamp({t0}), 'ios'"),
    "budget_advice": ("date, type, text", "to_timestamp({t0}), 'tip', 'Consider a weekly spending limit.'"),
    "notification_logs": ("channel, message, success, created_at",
                          "'apns', 'Daily summary', false, to_timestamp({t0})"),
}
# table: (columns after user_id, their SQL values)
_TEXT_TABLES: dict[str, tuple[str, str]] = {
    "expenses": ("action, amount, date", "'add', 12.5, (to_timestamp({t0}) AT TIME ZONE 'UTC')::date"),
    "user_answers": ("question_key, answer_json", "'monthly_income', '{{\"answer\": 3}}'"),
    "user_profiles": ("data", "'{{\"currency\": \"USD\"}}'"),
}


def add_orphan_rows(run: SeedRun) -> None:
    """Inserts, per table, rows whose user_id names nobody: a vanished user's uuid, or text that is no uuid."""
    h = run.h
    t0 = f"{run.now} - (o.i % 30 + 1) * {DAY}"
    for code, table, defect in ORPHAN_ROWS:
        count = defect.size(run.options.users)
        if table in _UUID_TABLES:
            columns, values = _UUID_TABLES[table]
            values = values.format(t0=t0, month=30 * DAY, seed=run.options.seed)
            n = run.insert(table, f"""
INSERT INTO {table} (id, user_id, {columns})
SELECT {h.uuid('orphan-' + table, 'o.i')}, {h.uuid('orphan-user-' + table, 'o.i')}, {values}
  FROM generate_series(1, {count}) AS o(i) ORDER BY o.i""")
        else:
            columns, values = _TEXT_TABLES[table]
            # Half are text that is no uuid at all ('', 'abc', '42', 'undefined' …, numbered once the list
            # runs out, since user_profiles.user_id is unique), half a well-formed uuid of nobody.
            bad = (f"CASE WHEN o.i % 2 = 1 THEN CASE WHEN o.i / 2 < {len(NOT_UUIDS)} "
                   f"THEN ({text_array(NOT_UUIDS)})[o.i / 2 + 1] ELSE 'user_' || o.i END "
                   f"ELSE ({h.uuid('orphan-user-' + table, 'o.i')})::text END")
            n = run.insert(table, f"""
INSERT INTO {table} (user_id, {columns})
SELECT {bad}, {values.format(t0=t0)}
  FROM generate_series(1, {count}) AS o(i) ORDER BY o.i""")
        run.truth.add(code, n, table if code in ("REF010", "REF011") else None)
