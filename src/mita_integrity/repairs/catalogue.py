"""Which repair mends which rule, and in what order repairs run.

Declared next to the rules' own `repair`/`repair_safety` documentation; a test keeps the two in step
(every rule whose safety is not `none` has a repair here, with the same safety).

The order matters: orphans go first (their transactions must not be summed into anybody's budget),
then single-column mends, then goals (progress after saved_amount, status after progress), then the
calendar — dates and duplicates before spent_amount is recomputed over the merged rows.
"""

from __future__ import annotations

from ..findings import FixSafety
from ..rules.amounts import ISO_CODES
from ..rules.goals import EXPECTED_PROGRESS
from .base import Repair
from .calendar import NOT_MIDNIGHT, MergeRepair, RecomputeRepair
from .rows import RowRepair

SAFE, UNSAFE = FixSafety.SAFE, FixSafety.UNSAFE
DELETE = RowRepair(SAFE)
_USER_CURRENCY = "(SELECT u.currency FROM users u WHERE u.id = t.user_id)"

REPAIRS: dict[str, Repair] = {
    # Safe: restore an invariant without a human decision.
    "REF006": DELETE, "REF007": DELETE, "REF005": DELETE, "REF002": DELETE, "REF001": DELETE,
    "REF003": DELETE, "REF004": DELETE, "REF010": DELETE,
    "REF008": RowRepair(SAFE, "goal_id = NULL"),
    # The table's trigger stamps updated_at = now() over what the repair sets: that mends a row created in the
    # past, never one created in the future (clock skew), which is left to a person rather than re-archived.
    "TIM001": RowRepair(SAFE, "updated_at = t.created_at", guard="t.created_at <= now()",
                        leaves="rows created in the future"),
    "TIM002": RowRepair(SAFE, "last_updated = t.created_at"),
    "TIM004": RowRepair(SAFE, "completed_at = t.created_at"),
    "GOL001": RowRepair(SAFE, f"progress = {EXPECTED_PROGRESS}"),
    "GOL002": RowRepair(SAFE, "status = 'completed', "
                              "completed_at = coalesce(t.completed_at, greatest(now(), t.created_at))"),
    "CAL001": MergeRepair(SAFE, f"bool_or({NOT_MIDNIGHT})"),
    "DUP002": MergeRepair(SAFE, "count(*) > 1"),
    "BUD001": RecomputeRepair(SAFE),
    "AMT006": RecomputeRepair(SAFE),
    # Unsafe: a guess; only with --unsafe.
    "NUL004": RowRepair(UNSAFE, "category = 'uncategorized'"),
    "NUL006": RowRepair(UNSAFE, "spent_at = coalesce(t.created_at, t.updated_at)"),  # updated_at is NOT NULL
    "TIM003": RowRepair(UNSAFE, "deleted_at = now()"),
    "AMT001": RowRepair(UNSAFE, f"currency = {_USER_CURRENCY}",
                        guard=f"{_USER_CURRENCY} IN (SELECT column1 FROM {ISO_CODES.table} c)"),
    "GOL004": RowRepair(UNSAFE, "saved_amount = 0"),
    "GOL003": RowRepair(UNSAFE, "saved_amount = t.target_amount"),
}

ORDER: tuple[str, ...] = (
    "REF006", "REF007", "REF005", "REF008", "REF002", "REF001", "REF003", "REF004", "REF010",
    "NUL004", "NUL006", "TIM003", "AMT001", "TIM001", "TIM002", "TIM004",
    "GOL004", "GOL003", "GOL001", "GOL002",
    "CAL001", "DUP002", "BUD001", "AMT006",
)


def order_key(code: str) -> int:
    return ORDER.index(code) if code in ORDER else len(ORDER)
