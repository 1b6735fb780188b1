"""The lines of `verify` that are read from the catalog and the data (no probe): each gives (passed, evidence)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..check.rules.context import Schema, ident
from ..check.rules.expected import CHECKS_0024, SPENT_TRIGGER_FUNCTION
from ..check.rules.references import REF011_WHERE, SPECIFIC, user_id_tables
from ..database.definitions import check_mismatch, on_cursor, unique_mismatch
from ..repair.repairs import REPAIRS
from ..runs import store

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
    other = unique_mismatch(on_cursor(cur))
    if other:
        return False, other
    return True, f"{UNIQUE_0023} present"


def checks(cur: Any, schema: Schema) -> tuple[bool, str]:
    problems = []
    for name, table in CHECKS_0024.items():
        cur.execute("SELECT convalidated, pg_get_expr(conbin, conrelid) FROM pg_constraint "
                    "WHERE conname = %s AND contype = 'c' AND conrelid = to_regclass(%s)", (name, f"public.{table}"))
        row = cur.fetchone()
        other = check_mismatch(on_cursor(cur), name) if row is not None else None
        if row is None:
            problems.append(f"{name} missing")
        elif other:
            problems.append(f"{other}: not the migration's (drop it, then run migrate upgrade again)")
        elif not row[0]:
            cur.execute(f"SELECT count(*) FROM public.{table} WHERE NOT ({row[1]})")
            count = int((cur.fetchone() or (0,))[0])
            rows = f"{count:,} row violates" if count == 1 else f"{count:,} rows violate"
            problems.append(f"{name} NOT VALID: {rows}; resolve: {resolution(name)}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(CHECKS_0024)} CHECK constraints present, validated, and as 0024 defines them"


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


@dataclass(frozen=True)
class Reference:
    """One column that names a parent row, and its count: rows with a value, and rows whose value names none."""

    table: str
    column: str
    code: str  # the rule that finds (and, but for REF011, repairs) these orphans
    rows: int
    orphaned: int


def orphan_counts(cur: Any, schema: Schema) -> list[Reference]:
    """Counts, row by row, the references that name no parent — never trusting a foreign key, which rows written
    under session_replication_role = replica (or with the key's triggers disabled) bypassed.

    The one definition of an orphan for verify's `orphans` and `referential-integrity` lines: a user_id (uuid, or
    text that must be a user's UUID) naming no user, and the habit_id and goal_id of REF006 and REF008.
    """
    columns: list[tuple[str, str, str, str]] = []  # table, column, code, predicate on t
    specific = {(r.table, r.column): r for r in SPECIFIC}
    for table in user_id_tables(schema, uuid=True):
        rule = specific.get((table, "user_id"))
        columns.append((table, "user_id", rule.code if rule else "REF010",
                        "NOT EXISTS (SELECT 1 FROM public.users p WHERE p.id = t.user_id)"))
    for table in user_id_tables(schema, uuid=False):
        columns.append((table, "user_id", "REF011", REF011_WHERE.replace("FROM users", "FROM public.users")))
    for rule in SPECIFIC:
        column = rule.column or ""
        if column not in ("", "user_id") and rule.table and schema.has(f"{rule.table}.{column}") \
                and rule.requires and schema.has(rule.requires[0]):
            columns.append((rule.table, column, rule.code,
                            f"NOT EXISTS (SELECT 1 FROM public.{ident(rule.requires[0])} p "
                            f"WHERE p.id = t.{ident(column)})"))
    if not columns:
        return []
    parts = [f"""SELECT {i}, count(*) FILTER (WHERE t.{ident(column)} IS NOT NULL),
                        count(*) FILTER (WHERE t.{ident(column)} IS NOT NULL AND {predicate})
                   FROM public.{ident(table)} t""" for i, (table, column, _, predicate) in enumerate(columns)]
    cur.execute(" UNION ALL ".join(parts))
    counts = {int(i): (int(n), int(o)) for i, n, o in cur.fetchall()}
    return [Reference(table, column, code, *counts[i]) for i, (table, column, code, _) in enumerate(columns)]


def orphans(references: list[Reference]) -> tuple[bool, str]:
    """The `orphans` line: every orphaned reference by table and column, and what resolves it."""
    failing = [r for r in references if r.orphaned]
    if not failing:
        return True, f"0 orphans in {len({r.table for r in references})} tables (every row counted)"
    found = ", ".join(f"{r.table}.{r.column} {r.orphaned:,} ({r.code})" for r in failing)
    parts = [f"{sum(r.orphaned for r in failing):,} orphaned rows: {found}"]
    fixable = sorted({r.code for r in failing if r.code != "REF011"})
    if fixable:
        parts.append(f"resolve: mita-integrity fix --apply --select {','.join(fixable)}")
    if any(r.code == "REF011" for r in failing):
        parts.append("REF011: a person decides (mita-integrity rules REF011)")
    return False, "; ".join(parts)


def percentage(references: list[Reference]) -> tuple[bool, str]:
    """The `referential-integrity` line: the share of references that name a parent (same count as `orphans`)."""
    if not references:
        return True, "no references to users, habits or goals"
    total = sum(r.rows for r in references)
    orphaned = sum(r.orphaned for r in references)
    columns = f"{len(references)} columns of {len({r.table for r in references})} tables"
    if total == 0:
        return True, f"100 % (no rows with a reference in {columns})"
    share = (total - orphaned) * 100 / total
    shown = "100" if orphaned == 0 else f"{int(share * 1000) / 1000:.3f}"  # never rounds up to 100
    return orphaned == 0, f"{shown} % ({orphaned:,} of {total:,} references orphaned, {columns})"


def invalid_indexes(cur: Any) -> list[str]:
    """Gives the invalid indexes of public (a failed or cut-short concurrent build: they enforce nothing)."""
    cur.execute("SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = 'public' AND NOT x.indisvalid "
                "ORDER BY 1")
    return [str(r[0]) for r in cur.fetchall()]
