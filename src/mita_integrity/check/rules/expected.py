"""What each migration after the baseline leaves in the schema; SCH rules and `verify` compare against it."""

from __future__ import annotations

USER_FK_TABLES_0026 = ("transactions", "habits", "moods", "push_tokens", "budget_advice", "notification_logs")

CHECKS_0024: dict[str, str] = {
    "ck_goals_saved_le_target": "goals",
    "ck_goals_progress_le_100": "goals",
    "ck_goals_target_positive": "goals",
    "ck_transactions_amount_nonnegative": "transactions",
    "ck_daily_plan_planned_nonnegative": "daily_plan",
}

SPENT_TRIGGER_FUNCTION = "update_daily_plan_spent"

# revision -> constraint names (or "table.column" / "trigger:function") the revision must leave behind.
EXPECTED_BY_REVISION: dict[str, tuple[str, ...]] = {
    "0022_add_missing_fk_constraints": ("fk_daily_plan_user_id", "fk_subscriptions_user_id",
                                        "subscriptions.deleted_at"),
    "0023_add_unique_constraint_daily_plan": ("uq_daily_plan_user_date_category",),
    "0024_add_check_constraints": tuple(CHECKS_0024),
    "0025_add_daily_plan_spent_trigger": (f"trigger:{SPENT_TRIGGER_FUNCTION}",),
    "0026_complete_user_foreign_keys": tuple(f"fk_{t}_user_id" for t in USER_FK_TABLES_0026),
    # 0027 replaces 0025's function under the same name (and adds its TRUNCATE trigger on transactions).
    "0027_harden_spent_trigger": (f"trigger:{SPENT_TRIGGER_FUNCTION}",),
}
CHAIN = ("0021_add_habit_completions", *EXPECTED_BY_REVISION)
