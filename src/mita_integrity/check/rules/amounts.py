"""Section 9: amounts and currencies that cannot be right."""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import CheckSpec, Family, RecomputeFix, RowFix, RowRule, rel
from .iso4217 import CODES
from .plan_limits import fits_plan_sql
from .references import ORPHANS

H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW
USER_CURRENCY = "(SELECT u.currency FROM public.users u WHERE u.id = t.user_id)"
SIGNED_CATEGORIES = ("income", "refund", "transfer")
# The ISO codes as a constant array: PostgreSQL (15 on) tests `<> ALL` of constants by a hash table it builds once,
# with no join to probe (measured on 5 million transactions: 0.6 s less than a hash join against a VALUES list).
ISO_CODES = "ARRAY[" + ", ".join(f"'{c}'" for c in sorted(CODES)) + "]::text[]"

# The live spending of the plan row t's key (its UTC day, as the trigger counts it): what AMT006 compares with.
# The subquery's alias carries the rule's code, like a join's: unique in the catalogue.
_X = "amt006_x"
KEY_TOTAL = (f"(SELECT coalesce(sum({_X}.amount), 0) FROM {rel('transactions')} {_X} WHERE {_X}.user_id = t.user_id "
             f"AND {_X}.category IS NOT DISTINCT FROM t.category AND {_X}.deleted_at IS NULL "
             f"AND {_X}.spent_at >= ((t.date AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC') "
             f"AND {_X}.spent_at < (((t.date AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC') "
             f"AND {fits_plan_sql(_X)})")

RULES = (
    RowRule(
        code="AMT001", name="invalid-currency", section=9, severity=M,
        finds="live transactions whose currency is not an ISO 4217 code.",
        why="Conversions and totals per currency drop or mis-convert such rows.",
        example="currency = 'US$' or 'usd' or 'XYZ'",
        repair="Unsafe: set the currency to the user's own currency, where that is a valid code (--unsafe).",
        repair_safety=FixSafety.UNSAFE,
        table="transactions", column="currency", live_only=True,
        message="currency is not an ISO 4217 code", hint="correct the code; the user's currency is the usual answer",
        predicate=f"t.currency IS NOT NULL AND t.currency <> ALL ({ISO_CODES})",
        fix=RowFix(after=ORPHANS, assignments=f"currency = {USER_CURRENCY}",
                   guard=f"{USER_CURRENCY} = ANY ({ISO_CODES})"),
    ),
    RowRule(
        code="AMT002", name="zero-amount", section=9, severity=L,
        finds="live transactions with an amount of exactly 0.",
        why="The application stores amounts from 0.01; a zero is a failed entry that still counts as a "
            "transaction in statistics.",
        example="amount = 0",
        repair="None: delete or correct after asking the user.", repair_safety=FixSafety.NONE,
        table="transactions", column="amount", live_only=True,
        message="amount is zero", hint="usually an abandoned entry; confirm before deleting",
        predicate="t.amount = 0",
    ),
    RowRule(
        code="AMT003", name="negative-spend", section=9, severity=H,
        finds="live transactions with a negative amount outside the categories income, refund and transfer.",
        why="Spending is stored positive; a negative spend silently reduces the day's spent_amount and hides "
            "overspending. Migration 0024 forbids it.",
        example="category 'food', amount -12.50",
        repair="None: whether it is a refund or a sign error needs a person.", repair_safety=FixSafety.NONE,
        table="transactions", column="amount", live_only=True,
        message="negative amount for spending", hint="make it positive, or recategorise it as a refund",
        requires=("transactions.category",),
        predicate=f"t.amount < 0 AND coalesce(lower(t.category), '') NOT IN "
                  f"({', '.join(repr(c) for c in SIGNED_CATEGORIES)})",
        # With a NULL category the CHECK is NULL (it passes) while the rule counts the row: NOT NULL is needed too.
        guaranteed_by_check=(CheckSpec("ck_transactions_amount_nonnegative",
                                       "amount >= 0 OR category = ANY (ARRAY['refund', 'income'])",
                                       not_null=("category",)),),
    ),
    RowRule(
        code="AMT004", name="huge-amount", section=9, severity=M,
        finds="live transactions above 1,000,000.",
        why="The application caps amounts at 1,000,000; larger ones are typos (cents entered as units) and "
            "dominate every chart.",
        example="amount = 25000000",
        repair="None: the intended amount needs a person.", repair_safety=FixSafety.NONE,
        table="transactions", column="amount", live_only=True,
        message="amount above 1,000,000", hint="confirm with the user; often cents were typed as units",
        predicate="t.amount > 1000000",
    ),
    RowRule(
        code="AMT005", name="negative-planned", section=9, severity=H,
        finds="daily_plan rows with a negative planned_amount.",
        why="A negative plan makes every day look overspent. Migration 0024 forbids it.",
        example="planned_amount = -20.00",
        repair="None: the intended plan needs a person (or a fresh plan from the app).",
        repair_safety=FixSafety.NONE, table="daily_plan", column="planned_amount",
        message="negative planned amount", hint="regenerate the user's plan for that day",
        predicate="t.planned_amount < 0",
        guaranteed_by_check=(CheckSpec("ck_daily_plan_planned_nonnegative", "planned_amount >= 0"),),
    ),
    RowRule(
        code="AMT006", name="negative-spent", section=9, severity=H,
        finds="daily_plan rows with a negative spent_amount that their key's live transactions (UTC day) do not "
              "explain; a day of refunds is legitimately negative and is not counted.",
        why="spent_amount sums the day's spending; a negative value no refund explains means a delete was "
            "applied twice.",
        example="spent_amount = -5.00 on a day whose transactions sum to 0",
        repair="Safe: recompute spent_amount from live transactions (the BUD001 repair).",
        repair_safety=FixSafety.SAFE, table="daily_plan", column="spent_amount",
        requires=("transactions.spent_at", "transactions.category", "transactions.deleted_at"),
        message="negative spent amount", hint="`mita-integrity fix --apply --select AMT006` recomputes it",
        predicate=f"t.spent_amount < 0 AND t.spent_amount <> {KEY_TOTAL}", fix=RecomputeFix(after=("BUD001",)),
    ),
)

FAMILY = Family("amounts", RULES)
