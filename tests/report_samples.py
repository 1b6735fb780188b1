"""A realistic synthetic `Report` for the renderer tests: what a nightly check of a neglected MITA database gives.

It covers every status and every severity, every rule section, a rule reported per table (REF010 on moods,
push_tokens …), duplicates with groups, uuid samples, an errored rule, and skipped and guaranteed ones with
their reasons. Built from fixed seeds, so every render of it is the same.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mita_integrity.findings import DatabaseInfo, FixSafety, Report, Result, Severity, Status, TableStats

STARTED = datetime(2026, 11, 25, 2, 15, 0, tzinfo=UTC)
FINISHED = STARTED + timedelta(seconds=12, milliseconds=345)
RUN_ID = "6f1c2a9e-3b7d-4c85-9e21-0d4b5a7c8e13"
MASKED_URL = "postgresql://postgres.abcdefghij:***@aws-0-eu-central-1.pooler.supabase.com:6543/postgres?sslmode=require"

C, H, M, L, INFO = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO
PASS, FAIL, SKIP, GUAR, ERR = Status.PASS, Status.FAIL, Status.SKIPPED, Status.GUARANTEED, Status.ERROR


def keys(label: str, n: int) -> tuple[str, ...]:
    """Gives `n` stable uuids for a sample (the same for the same label)."""
    return tuple(str(uuid.uuid5(uuid.NAMESPACE_URL, f"mita/{label}/{i}")) for i in range(n))


def result(
    code: str, name: str, section: int, severity: Severity, status: Status, table: str,
    column: str | None = None, count: int = 0, message: str = "", **extra: Any,
) -> Result:
    """Gives a `Result` with a uuid sample of up to 10 keys when it fails and no sample was given."""
    if status is FAIL and "sample" not in extra:
        extra["sample"] = keys(f"{code}/{table}", min(count, 10))
    extra.setdefault("duration_ms", 3 + (sum(map(ord, code + table)) % 180))
    return Result(code, name, section, severity, status, table, column, count, message=message, **extra)


def _orphans(code: str, table: str, severity: Severity, status: Status, count: int = 0) -> Result:
    noun = table.rstrip("s").replace("_", " ")
    return result(code, f"{table} without a user", 4, severity, status, table, "user_id", count,
                  f"{noun} rows whose user_id names no user" if status is FAIL else "",
                  fix_available=True, fix_safety=FixSafety.SAFE)


def sample_results() -> tuple[Result, ...]:
    """Gives ~65 results over sections 3..14 with every status and severity."""
    not_null = "validated constraint: column {} is NOT NULL"
    return (
        # 3. Missing critical values
        result("NUL001", "user without e-mail", 3, H, FAIL, "users", "email", 3, "users with a NULL or blank e-mail"),
        result("NUL002", "user without password hash", 3, H, GUAR, "users", "password_hash",
               reason=not_null.format("users.password_hash")),
        result("NUL003", "transaction without user", 3, C, FAIL, "transactions", "user_id", 17,
               "transactions with a NULL user_id", hint="they cannot be attributed: archive then delete them"),
        result("NUL004", "transaction without category", 3, H, FAIL, "transactions", "category", 5,
               "transactions with a NULL or blank category", fix_available=True, fix_safety=FixSafety.UNSAFE),
        result("NUL005", "transaction without amount", 3, C, PASS, "transactions", "amount"),
        result("NUL006", "transaction without spent_at", 3, H, GUAR, "transactions", "spent_at",
               reason=not_null.format("transactions.spent_at")),
        result("NUL007", "goal without user", 3, C, PASS, "goals", "user_id"),
        result("NUL008", "goal without title", 3, H, FAIL, "goals", "title", 2, "goals with a NULL or blank title"),
        result("NUL009", "goal without target", 3, C, PASS, "goals", "target_amount"),
        result("NUL010", "plan row without user", 3, C, PASS, "daily_plan", "user_id"),
        result("NUL011", "plan row without date", 3, H, GUAR, "daily_plan", "date",
               reason=not_null.format("daily_plan.date")),
        # 4. Orphaned records
        _orphans("REF001", "transactions", C, FAIL, 42),
        _orphans("REF002", "goals", C, PASS),
        _orphans("REF003", "daily_plan", C, FAIL, 9),
        _orphans("REF004", "subscriptions", C, FAIL, 4),
        _orphans("REF005", "habits", H, PASS),
        result("REF006", "habit completion without habit", 4, H, FAIL, "habit_completions", "habit_id", 6,
               "habit completions whose habit_id names no habit", fix_available=True, fix_safety=FixSafety.SAFE),
        _orphans("REF007", "habit_completions", H, PASS),
        result("REF008", "transaction linked to a missing goal", 4, H, FAIL, "transactions", "goal_id", 3,
               "transactions whose goal_id names no goal", fix_available=True, fix_safety=FixSafety.SAFE,
               hint="the repair sets goal_id to NULL; the transactions stay"),
        _orphans("REF010", "moods", H, FAIL, 7),
        _orphans("REF010", "push_tokens", H, FAIL, 2),
        _orphans("REF010", "budget_advice", H, PASS),
        _orphans("REF010", "notification_logs", H, PASS),
        result("REF010", "ai_analysis_snapshots without a user", 4, H, SKIP, "ai_analysis_snapshots", "user_id",
               reason="table ai_analysis_snapshots does not exist"),
        result("REF011", "varchar user_id not a user", 4, M, FAIL, "expenses", "user_id", 11,
               "expenses whose user_id is not a UUID or names no user",
               sample=("41", "legacy-0007", "7c9e6679-7425-40de-944b-e07fc1f90ae7", " ", "guest")),
        result("REF011", "varchar user_id not a user", 4, M, PASS, "user_answers", "user_id"),
        result("REF011", "varchar user_id not a user", 4, M, ERR, "user_profiles", "user_id",
               reason="canceling statement due to statement timeout (statement_timeout=30s); "
                      "rerun with a longer --statement-timeout or in a quieter hour"),
        # 5. Duplicates
        result("DUP001", "users sharing an e-mail", 5, C, FAIL, "users", "email", 3,
               "users whose e-mail matches another's ignoring case and spaces", groups=2,
               hint="merge the accounts by hand: `mita-integrity rules DUP001` shows how"),
        result("DUP002", "duplicate calendar entries", 5, H, FAIL, "daily_plan", None, 14,
               "daily_plan rows sharing (user_id, day, category)", groups=9,
               fix_available=True, fix_safety=FixSafety.SAFE),
        result("DUP003", "duplicate transactions", 5, M, FAIL, "transactions", None, 4,
               "live transactions identical in user, category, amount and spent_at", groups=4,
               fix_available=True, fix_safety=FixSafety.UNSAFE),
        # 6. Impossible timestamps
        result("TIM001", "transaction updated before created", 6, M, PASS, "transactions", "updated_at"),
        result("TIM002", "goal updated before created", 6, M, FAIL, "goals", "last_updated", 1,
               "goals whose created_at is after last_updated"),
        result("TIM003", "transaction in the future", 6, M, FAIL, "transactions", "spent_at", 2,
               "live transactions spent more than a day from now"),
        result("TIM004", "goal completed before created", 6, H, PASS, "goals", "completed_at"),
        result("TIM005", "transaction deleted before created", 6, M, PASS, "transactions", "deleted_at"),
        # 7. Budget consistency
        result("BUD001", "plan spending drifts from transactions", 7, H, FAIL, "daily_plan", "spent_amount", 23,
               "plan days whose spent_amount differs from their transactions' sum (last 30 days)",
               fix_available=True, fix_safety=FixSafety.SAFE),
        # 8. Goal consistency
        result("GOL001", "goal progress drifts", 8, H, FAIL, "goals", "progress", 5,
               "goals whose progress is not min(saved/target×100, 100)", fix_available=True,
               fix_safety=FixSafety.SAFE),
        result("GOL002", "goal reached but not completed", 8, M, FAIL, "goals", "status", 2,
               "goals at 100% progress whose status is not 'completed'"),
        result("GOL003", "goal over-saved", 8, M, FAIL, "goals", "saved_amount", 3,
               "goals saving more than their target"),
        result("GOL004", "goal with negative savings", 8, H, PASS, "goals", "saved_amount"),
        result("GOL005", "goal without a positive target", 8, H, FAIL, "goals", "target_amount", 1,
               "goals whose target_amount is 0 or less", hint="needs a person: ask the user for the target"),
        result("GOL006", "goal with an unknown status", 8, M, PASS, "goals", "status"),
        # 9. Amounts and currencies
        result("AMT001", "unknown currency", 9, M, FAIL, "transactions", "currency", 2,
               'live transactions whose currency is not ISO 4217 (e.g. "usd ", "€")'),
        result("AMT002", "zero amount", 9, L, FAIL, "transactions", "amount", 6, "live transactions of amount 0"),
        result("AMT003", "negative spending", 9, H, FAIL, "transactions", "amount", 3,
               "live transactions below 0 outside income, refund and transfer"),
        result("AMT004", "implausibly large amount", 9, M, PASS, "transactions", "amount"),
        result("AMT005", "negative planned amount", 9, H, GUAR, "daily_plan", "planned_amount",
               reason="validated CHECK constraint ck_daily_plan_planned_amount_nonneg"),
        result("AMT006", "negative spent amount", 9, H, PASS, "daily_plan", "spent_amount"),
        # 10. Soft deletion
        result("SDL001", "soft-deleted rows", 10, INFO, FAIL, "transactions", "deleted_at", 31,
               "soft-deleted transactions kept for undo"),
        result("SDL001", "soft-deleted rows", 10, INFO, FAIL, "goals", "deleted_at", 4,
               "soft-deleted goals kept for undo"),
        result("SDL002", "live transaction on a deleted goal", 10, L, FAIL, "transactions", "goal_id", 2,
               "live transactions linked to a soft-deleted goal"),
        # 11. Schema and constraints
        result("SCH001", "user_id without a foreign key", 11, H, FAIL, "moods", "user_id", 1,
               "moods.user_id has no foreign key to users", sample=(),
               hint="migration 0026_complete_user_foreign_keys adds it online"),
        result("SCH001", "user_id without a foreign key", 11, H, FAIL, "push_tokens", "user_id", 1,
               "push_tokens.user_id has no foreign key to users", sample=()),
        result("SCH002", "foreign key NOT VALID", 11, H, PASS, "daily_plan"),
        result("SCH003", "calendar without unique key", 11, H, FAIL, "daily_plan", None, 1,
               "no unique constraint on (user_id, date, category)", sample=("uq_daily_plan_user_date_category",),
               hint="migration 0023_add_unique_constraint_daily_plan merges the duplicates and adds it"),
        result("SCH004", "CHECK constraint missing", 11, M, FAIL, "goals", None, 4,
               "CHECK constraints of migration 0024 missing or NOT VALID",
               sample=("ck_goals_saved_le_target", "ck_goals_progress_le_100", "ck_goals_target_positive",
                       "ck_transactions_amount_nonneg")),
        result("SCH005", "spent_amount trigger missing", 11, M, FAIL, "transactions", None, 1,
               "trigger update_daily_plan_spent is missing", sample=()),
        result("SCH006", "foreign key without index", 11, L, FAIL, "habit_completions", "habit_id", 3,
               "foreign key columns with no index leading with them",
               sample=("habit_completions.habit_id", "transactions.goal_id", "notification_logs.user_id")),
        result("SCH007", "invalid index", 11, H, PASS, "daily_plan"),
        result("SCH008", "foreign key blocks user deletion", 11, H, FAIL, "budget_advice", "user_id", 2,
               "foreign keys to users with NO ACTION: deleting a user fails",
               sample=("budget_advice_user_id_fkey", "notification_logs_user_id_fkey")),
        result("SCH009", "migration stamped, not run", 11, C, PASS, "alembic_version"),
        # 12. Users and onboarding
        result("USR001", "onboarded user without monthly income", 12, M, FAIL, "users", "monthly_income", 12,
               "onboarded users without monthly_income"),
        result("USR002", "onboarded user without annual income", 12, L, FAIL, "users", "annual_income", 30,
               "onboarded users without annual_income"),
        result("USR003", "onboarded user without spending", 12, INFO, FAIL, "users", None, 8,
               "onboarded users with no live transactions"),
        # 14. Calendar and physical storage
        result("CAL001", "plan date not at midnight", 14, M, FAIL, "daily_plan", "date", 6,
               "daily_plan dates with a time of day (the source of duplicates)", fix_available=True,
               fix_safety=FixSafety.SAFE),
        result("CAL002", "overspent plan day", 14, INFO, FAIL, "daily_plan", "spent_amount", 15,
               "plan days spent beyond their planned amount"),
        result("PHY001", "B-tree corruption", 14, C, SKIP, "*", reason="runs only with --physical (amcheck)"),
    )


def sample_tables() -> tuple[TableStats, ...]:
    """Gives row counts of the MITA tables, a few never vacuumed and one with many dead rows."""
    vacuumed = STARTED - timedelta(hours=23)
    return (
        TableStats("users", 1_204, 12, None, vacuumed),
        TableStats("transactions", 184_392, 2_311, vacuumed - timedelta(days=2), vacuumed),
        TableStats("daily_plan", 96_118, 41_007, None, STARTED - timedelta(days=9)),
        TableStats("goals", 2_877, 5, None, None),
        TableStats("subscriptions", 640, 0, None, None),
        TableStats("habits", 3_019, 21, None, vacuumed),
        TableStats("habit_completions", 58_240, 377, None, vacuumed),
        TableStats("moods", 11_503, 88, None, vacuumed),
        TableStats("push_tokens", 1_377, 402, None, None),
        TableStats("budget_advice", 7_460, 0, None, vacuumed),
        TableStats("notification_logs", 402_118, 9_990, None, vacuumed),
        TableStats("expenses", 4_310, 0, None, None),
    )


def sample_report(*, since: str | None = None, results: tuple[Result, ...] | None = None) -> Report:
    """Gives the synthetic report (optionally with a `--since` window or other results)."""
    options: dict[str, Any] = {"sample": 10, "fail_on": "high"}
    if since:
        options["since"] = since
    return Report(
        run_id=RUN_ID,
        started_at=STARTED,
        finished_at=FINISHED,
        database=DatabaseInfo(MASKED_URL, "postgres", "PostgreSQL 15.8", "postgres.abcdefghij",
                              "0021_add_habit_completions"),
        tables=sample_tables(),
        results=sample_results() if results is None else results,
        tool_version="0.1.0",
        options=options,
    )


def prometheus_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Gives every sample of a Prometheus exposition, read by the official client's parser: the value of each
    (name, labels) series. Label order and number spelling (`1` or `1.0`, `1.7e+09`) are the writer's."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def prometheus_value(text: str, name: str, **labels: str) -> float:
    """Gives the value of one series of a Prometheus exposition (KeyError when it is not there)."""
    return prometheus_samples(text)[(name, frozenset(labels.items()))]
