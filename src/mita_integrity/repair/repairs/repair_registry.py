"""Which repair mends which rule, and in what order repairs run — both read from the rules' own declarations.

Each rule declares its repair (`Rule.fix`: a RowFix, MergeFix or RecomputeFix) and the rules whose repair
must run before it (`Fix.after`). This module only turns each kind of Fix into its implementation (rows.py,
calendar.py) and orders them; a test keeps `repair_safety` and the repairs in step.

The order the declarations give: orphans first (their transactions must not be summed into anybody's
budget), then single-column mends, then goals (progress after saved_amount, status after progress), then the
calendar — dates and duplicates before spent_amount is recomputed over the merged rows.
"""

from __future__ import annotations

from ...check.rule_registry import ALL_RULES
from ...check.rules.base import Fix, MergeFix, RecomputeFix, RowFix, Rule
from .base import Repair
from .calendar import MergeRepair, RecomputeRepair
from .rows import RowRepair


def _repair(rule: Rule, fix: Fix) -> Repair:
    """Gives the implementation of a rule's declared repair (one per kind of Fix)."""
    if isinstance(fix, RowFix):
        return RowRepair(rule.repair_safety, fix.assignments, guard=fix.guard, leaves=fix.leaves)
    if isinstance(fix, MergeFix):
        return MergeRepair(rule.repair_safety, fix.needs)
    if isinstance(fix, RecomputeFix):
        return RecomputeRepair(rule.repair_safety)
    raise AssertionError(f"{rule.code}: no repair implements {type(fix).__name__}")


def _ordered(rules: list[Rule]) -> tuple[str, ...]:
    """Gives the codes so that every repair runs after those it names in `after` (catalogue order otherwise)."""
    codes = {r.code for r in rules}
    pending = {r.code: {c for c in (r.fix.after if r.fix else ()) if c in codes} for r in rules}
    out: list[str] = []
    while pending:
        ready = [r.code for r in rules if r.code in pending and not pending[r.code] - set(out)]
        assert ready, f"the repairs' `after` declarations form a cycle: {sorted(pending)}"
        out.append(ready[0])
        del pending[ready[0]]
    return tuple(out)


_FIXED = [r for r in ALL_RULES if r.fix is not None]
REPAIRS: dict[str, Repair] = {r.code: _repair(r, r.fix) for r in _FIXED if r.fix is not None}
ORDER: tuple[str, ...] = _ordered(_FIXED)


def order_key(code: str) -> int:
    return ORDER.index(code) if code in ORDER else len(ORDER)
