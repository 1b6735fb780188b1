"""Section 8: goals whose numbers disagree with each other."""

from __future__ import annotations

from ...findings import FixSafety, Severity
from .base import CheckSpec, Family, RowFix, RowRule
from .references import ORPHANS

H, M = Severity.HIGH, Severity.MEDIUM
VALID_STATUSES = ("active", "completed", "paused", "cancelled")
EXPECTED_PROGRESS = "least(t.saved_amount / t.target_amount * 100, 100)"

RULES = (
    RowRule(
        code="GOL001", name="goal-progress-drift", section=8, severity=H,
        finds="live goals whose progress differs from min(saved/target×100, 100) by more than 0.01.",
        why="progress is derived from saved and target; when it drifts the app shows the wrong bar and "
            "completes goals too early or never.",
        example="saved 50, target 200, progress 40 (should be 25)",
        repair="Safe: recompute progress from saved and target (archived first).", repair_safety=FixSafety.SAFE,
        table="goals", column="progress", requires=("goals.saved_amount", "goals.target_amount"), live_only=True,
        message="progress disagrees with saved/target",
        hint="`mita-integrity fix --apply --select GOL001` recomputes it",
        predicate=f"t.target_amount > 0 AND abs(t.progress - {EXPECTED_PROGRESS}) > 0.01",
        # progress is recomputed after saved_amount is mended (GOL004, GOL003)
        fix=RowFix(after=(*ORPHANS, "GOL004", "GOL003"), assignments=f"progress = {EXPECTED_PROGRESS}"),
    ),
    RowRule(
        code="GOL002", name="goal-reached-not-completed", section=8, severity=M,
        finds="live goals at 100 % progress whose status is not 'completed'.",
        why="Users are never congratulated and the goal keeps asking for contributions.",
        example="progress 100.00, status 'active'",
        repair="Safe: set status 'completed' and completed_at (archived first).", repair_safety=FixSafety.SAFE,
        table="goals", column="status", requires=("goals.progress",), live_only=True,
        message="reached 100 % but not completed", hint="`mita-integrity fix --apply --select GOL002` completes them",
        predicate="t.progress >= 100 AND t.status IS DISTINCT FROM 'completed'",
        fix=RowFix(after=(*ORPHANS, "GOL001"),  # status after progress
                   assignments="status = 'completed', completed_at = coalesce(t.completed_at, greatest(now(), "
                               "t.created_at))"),
    ),
    RowRule(
        code="GOL003", name="goal-over-saved", section=8, severity=M,
        finds="live goals whose saved_amount exceeds target_amount.",
        why="Migration 0024 forbids it (saved ≤ target); existing rows keep that constraint NOT VALID.",
        example="saved 1200, target 1000",
        repair="Unsafe: cap saved_amount at target_amount (money moves; --unsafe).",
        repair_safety=FixSafety.UNSAFE, table="goals", column="saved_amount",
        requires=("goals.target_amount",), live_only=True,
        message="saved more than the target",
        hint="ask whether the target grew; `mita-integrity fix --apply --unsafe --select GOL003` caps it",
        predicate="t.saved_amount > t.target_amount",
        fix=RowFix(after=(*ORPHANS, "GOL004"), assignments="saved_amount = t.target_amount"),
        guaranteed_by_check=(CheckSpec("ck_goals_saved_le_target", "saved_amount <= target_amount"),),
    ),
    RowRule(
        code="GOL004", name="goal-negative-saved", section=8, severity=H,
        finds="live goals with a negative saved_amount.",
        why="Negative savings are impossible and make progress negative.",
        example="saved_amount = -50.00",
        repair="Unsafe: set saved_amount to 0 (--unsafe).", repair_safety=FixSafety.UNSAFE,
        table="goals", column="saved_amount", live_only=True,
        message="negative saved amount",
        hint="find the withdrawal that went wrong; `mita-integrity fix --apply --unsafe --select GOL004` zeroes it",
        predicate="t.saved_amount < 0", fix=RowFix(after=ORPHANS, assignments="saved_amount = 0"),
    ),
    RowRule(
        code="GOL005", name="goal-target-not-positive", section=8, severity=H,
        finds="goals whose target_amount is zero or negative.",
        why="Progress divides by the target: a zero target is a division by zero, a negative one nonsense.",
        example="target_amount = 0",
        repair="None: the intended target needs a person.", repair_safety=FixSafety.NONE,
        table="goals", column="target_amount",
        message="target is not positive", hint="ask the user for the target, or cancel the goal",
        predicate="t.target_amount <= 0",
        guaranteed_by_check=(CheckSpec("ck_goals_target_positive", "target_amount > 0"),),
    ),
    RowRule(
        code="GOL006", name="goal-unknown-status", section=8, severity=M,
        finds="goals whose status is not one of active, completed, paused, cancelled.",
        why="The app filters goals by status; an unknown one makes the goal vanish from every list.",
        example="status = 'done'",
        repair="None: map the value by hand once its meaning is known.", repair_safety=FixSafety.NONE,
        table="goals", column="status",
        message="status is not a known value", hint="map it to active, completed, paused or cancelled",
        predicate="t.status IS NULL OR t.status NOT IN ('active', 'completed', 'paused', 'cancelled')",
    ),
)

FAMILY = Family("goals", RULES)
