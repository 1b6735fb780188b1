"""The lines of `verify` that are read from the catalog and the data (no probe): each gives (passed, evidence)."""

from __future__ import annotations

from typing import Any

from . import store
from .repairs import REPAIRS
from .rules.context import Schema, ident
from .rules.expected import CHECKS_0024, SPENT_TRIGGER_FUNCTION

UNIQUE_0023 = "uq_daily_plan_user_date_category"
# The rule whose repair resolves a CHECK's violators (its own `fix` safety decides --unsafe).
CHECK_RULES = {"ck_goals_saved_le_target": "GOL003", "ck_goals_progress_le_100": "GOL001",
               "ck_goals_target_positive": "GOL005", "ck_transactions_amount_nonnegative": "AMT003",
               "ck_daily_plan_planned_nonnegative": "AMT005"}


def unique_catalog(cur: Any, schema: Schema) -> tuple[bool, str]:
    cur.execute("""SELECT con.contype::text, coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false),
                          x.indisvalid
                     FROM pg_constraint con LEFT JOIN pg_index x ON x.indexrelid = con.conindid
                    WHERE con.conname = %s AND con.conrelid = to_regclass('public.daily_plan')""", (UNIQUE_0023,))
    row = cur.fetchone()
    if row is None or row[0] != "u":
        return False, f"{UNIQUE_0023} missing"
    if not row[2]:
        return False, f"{UNIQUE_0023}'s index is invalid"
    if not row[1] and not schema.not_null("daily_plan", "category"):
        return False, f"{UNIQUE_0023} lets NULL categories repeat (not NULLS NOT DISTINCT)"
    return True, f"{UNIQUE_0023} present"


def checks(cur: Any, schema: Schema) -> tuple[bool, str]:
    problems = []
    for name, table in CHECKS_0024.items():
        cur.execute("SELECT convalidated, pg_get_expr(conbin, conrelid) FROM pg_constraint "
                    "WHERE conname = %s AND contype = 'c' AND conrelid = to_regclass(%s)", (name, f"public.{table}"))
        row = cur.fetchone()
        if row is None:
            problems.append(f"{name} missing")
        elif not row[0]:
            cur.execute(f"SELECT count(*) FROM public.{table} WHERE NOT ({row[1]})")
            count = int((cur.fetchone() or (0,))[0])
            rows = f"{count:,} row violates" if count == 1 else f"{count:,} rows violate"
            problems.append(f"{name} NOT VALID: {rows}; resolve: {resolution(name)}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(CHECKS_0024)} CHECK constraints present and validated"


def resolution(name: str) -> str:
    code = CHECK_RULES.get(name)
    repair = REPAIRS.get(code or "")
    validate = "mita-integrity migrate validate"
    if repair is None:
        return f"a person decides (mita-integrity rules {code}), then {validate}"
    unsafe = " --unsafe" if repair.safety.value == "unsafe" else ""
    return f"mita-integrity fix --apply{unsafe} --select {code}, then {validate}"


def trigger_catalog(cur: Any) -> tuple[bool, str]:
    cur.execute("""SELECT tg.tgname::text, tg.tgenabled::text FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
                    WHERE tg.tgrelid = to_regclass('public.transactions') AND p.proname = %s AND NOT tg.tgisinternal
                    ORDER BY tg.tgenabled IN ('O', 'A') DESC, 1""", (SPENT_TRIGGER_FUNCTION,))
    row = cur.fetchone()
    if row is None:
        return False, f"trigger missing: no trigger on transactions calls {SPENT_TRIGGER_FUNCTION}()"
    if row[1] not in ("O", "A"):
        return False, f"trigger {row[0]} is disabled" if row[1] == "D" else f"trigger {row[0]} fires only on replicas"
    return True, f"{row[0]} enabled"


def percentage(cur: Any, uuid_tables: list[str]) -> tuple[bool, str]:
    if not uuid_tables:
        return True, "no uuid user_id columns"
    parts = [f"""SELECT count(*) FILTER (WHERE t.user_id IS NOT NULL),
                        count(*) FILTER (WHERE t.user_id IS NOT NULL
                                          AND NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = t.user_id))
                   FROM public.{ident(table)} t""" for table in uuid_tables]
    cur.execute(f"SELECT coalesce(sum(n), 0), coalesce(sum(o), 0) FROM ({' UNION ALL '.join(parts)}) x(n, o)")
    total, orphaned = (int(v) for v in (cur.fetchone() or (0, 0)))
    if total == 0:
        return True, f"100 % (no rows with a user_id in {len(uuid_tables)} tables)"
    share = (total - orphaned) * 100 / total
    shown = "100" if orphaned == 0 else f"{int(share * 1000) / 1000:.3f}"  # never rounds up to 100
    return orphaned == 0, f"{shown} % ({orphaned:,} of {total:,} rows orphaned, {len(uuid_tables)} tables)"


def recent(cur: Any, max_age_seconds: int) -> tuple[bool, str]:
    hint = "run `mita-integrity check --record` (or schedule)"
    if not store.exists(cur):
        return False, f"no check run recorded: {hint}"
    cur.execute(f"""SELECT id::text, extract(epoch FROM now() - coalesce(finished_at, started_at))
                      FROM {store.SCHEMA}.runs WHERE kind = 'check' AND status = 'completed'
                     ORDER BY coalesce(finished_at, started_at) DESC LIMIT 1""")
    row = cur.fetchone()
    if row is None:
        return False, f"no check run recorded: {hint}"
    seconds = max(int(row[1]), 0)
    text = f"last check run {row[0]} finished {duration(seconds)} ago"
    if seconds > max_age_seconds:
        return False, f"{text}, older than {duration(max_age_seconds)}: {hint}"
    return True, text


def duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"
