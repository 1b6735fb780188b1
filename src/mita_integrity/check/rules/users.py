"""Section 12: users who finished onboarding but are missing what onboarding should have given."""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import Family, QueryRule, RowRule, Rule, each_rule, rel
from .context import CheckContext, Outcome
from .sampling import count_and_sample

RULES: tuple[Rule, ...] = (
    RowRule(
        code="USR001", name="onboarded-without-monthly-income", section=12, severity=Severity.MEDIUM,
        finds="onboarded users whose monthly_income is NULL or 0.",
        why="Daily budgets are computed from monthly income; without it the plan is empty.",
        example="has_onboarded = true, monthly_income = 0",
        repair="None: the income must come from the user.", repair_safety=FixSafety.NONE,
        table="users", column="monthly_income", requires=("users.has_onboarded",),
        message="onboarded without monthly income", hint="prompt the user to complete the income step",
        predicate="t.has_onboarded AND (t.monthly_income IS NULL OR t.monthly_income = 0)",
    ),
    RowRule(
        code="USR002", name="onboarded-without-annual-income", section=12, severity=Severity.LOW,
        finds="onboarded users whose annual_income is NULL or 0.",
        why="Yearly insights and installment risk checks use annual income.",
        example="has_onboarded = true, annual_income = NULL",
        repair="None: the income must come from the user.", repair_safety=FixSafety.NONE,
        table="users", column="annual_income", requires=("users.has_onboarded",),
        message="onboarded without annual income", hint="derive it from monthly income with the user's consent",
        predicate="t.has_onboarded AND (t.annual_income IS NULL OR t.annual_income = 0)",
    ),
    QueryRule(
        code="USR003", name="onboarded-without-transactions", section=12, severity=Severity.INFO,
        finds="onboarded users with no live transaction at all.",
        why="Not a defect by itself: a measure of activation, and a hint of broken sync when it jumps.",
        example="a user who finished onboarding last week and never logged spending",
        repair="None: informational.", repair_safety=FixSafety.NONE,
        table="users", column="has_onboarded", requires=("transactions.user_id",),
        message="onboarded but no transactions", hint="informational: watch the trend, not the number",
        evaluate=lambda ctx, rule: _usr003(ctx, rule),
        script=lambda ctx, rule: (f"SELECT 'USR003' AS code, 'users' AS \"table\", count(*) AS count "
                                  f"FROM public.users t WHERE {usr003_where(ctx)};"),
    ),
)


def usr003_where(ctx: CheckContext) -> str:
    """Gives USR003's condition on users t: onboarded, and no live transaction (an anti-join)."""
    live = " AND x.deleted_at IS NULL" if ctx.schema.has("transactions.deleted_at") else ""
    since = ctx.since_filter("users")
    return (f"t.has_onboarded AND NOT EXISTS (SELECT 1 FROM {rel('transactions')} x WHERE x.user_id = t.id{live})"
            + (f" AND {since}" if since else ""))


def _usr003(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    count, sample = count_and_sample(ctx, "users", usr003_where(ctx))
    return [Outcome(rule.code, "users", count, sample=sample)]


FAMILY = Family("users", RULES, each_rule)
