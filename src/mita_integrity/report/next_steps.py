"""What resolves a schema finding, given where the database stands in the migration chain.

A rule's own hint is written for the baseline: "`migrate upgrade head` (0024) adds it". Once that
migration has run the same finding means something else — a constraint left NOT VALID waits for
`migrate validate`, an object the migration made and someone removed waits for a person — so the
reports and the fix plan ask here, with the database's alembic revision, instead of repeating the hint.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING

from ..check.rules.schema import OTHER_DEFINITION
from ..findings import Report, Result, Status

if TYPE_CHECKING:
    from ..repair.plan import FixPlan, PlanItem

# The migration that makes each schema rule pass (SCH001: 0022 for these two tables, 0026 for the others).
_MIGRATION = {"SCH001": 26, "SCH003": 23, "SCH004": 24, "SCH005": 25, "SCH006": 26, "SCH008": 26}
_FK_0022_TABLES = ("daily_plan", "subscriptions")
# Rules whose violations a migration leaves NOT VALID when rows still violate them.
_VALIDATED = ("SCH002", "SCH004")
VALIDATE = "`mita-integrity migrate validate`"
UPGRADE = "`mita-integrity migrate upgrade head`"


class Step(Enum):
    """Who resolves a schema finding at the database's revision."""

    UPGRADE = "left to the migrations (mita-integrity migrate upgrade head)"
    VALIDATE = "left to mita-integrity migrate validate"
    PERSON = "needs a person"


def _number(revision: str | None) -> int:
    """Gives a revision's number (0024_add_check_constraints: 24); 0 for none or an unknown form."""
    head = (revision or "")[:4]
    return int(head) if head.isdigit() else 0


def _migration_of(result: Result) -> int | None:
    if result.code == "SCH001" and result.table in _FK_0022_TABLES:
        return 22
    return _MIGRATION.get(result.code)


def step(result: Result, revision: str | None) -> Step | None:
    """Gives who resolves a schema finding at `revision`; None for a rule that is not about the schema."""
    if not result.code.startswith("SCH"):
        return None
    if result.code in _VALIDATED and (result.code == "SCH002" or _number(revision) >= 24):
        return Step.VALIDATE
    migration = _migration_of(result)
    if migration is not None and _number(revision) < migration:
        return Step.UPGRADE
    return Step.PERSON


def hint(result: Result, revision: str | None) -> str:
    """Gives the result's hint as it holds at `revision` (the rule's own where the revision changes nothing)."""
    if result.status is not Status.FAIL:
        return result.hint
    found = step(result, revision)
    migration = _migration_of(result)
    if found is Step.VALIDATE and result.code == "SCH004":
        if any(str(name).endswith(OTHER_DEFINITION) for name in result.sample):
            return ("0024 ran, yet a constraint of its name enforces something else: a person drops it and adds "
                    "0024's definition (`mita-integrity rules SCH004` shows it), then `mita-integrity verify`")
        return (f"0024 ran and left it NOT VALID: resolve the rows it names (`mita-integrity verify` lists them), "
                f"then {VALIDATE}")
    if found is Step.PERSON and migration is not None:
        return (f"{migration:04d} ran, yet this is missing: a person restores it (`mita-integrity verify` names the "
                "migrations whose objects are absent)")
    return result.hint


def revised(report: Report) -> Report:
    """Gives the report with every hint as it holds at the report's own revision."""
    revision = report.database.alembic_revision
    results = tuple(r if (h := hint(r, revision)) == r.hint else replace(r, hint=h) for r in report.results)
    return replace(report, results=results)


# Why a finding of the fix plan is left out of `fix --apply`, in the order the plan lists them.
UNSAFE, INFORMATIONAL = "needs --unsafe", "informational"
LEFT_ORDER = [UNSAFE, Step.UPGRADE.value, Step.VALIDATE.value, INFORMATIONAL, Step.PERSON.value]
_LEFT_SHORT = {UNSAFE: "need --unsafe", Step.UPGRADE.value: "wait for the migrations",
               Step.VALIDATE.value: "wait for migrate validate", INFORMATIONAL: "informational",
               Step.PERSON.value: "need a person"}


def why_left(item: PlanItem, revision: str | None) -> str:
    """Gives why `fix --apply` leaves a plan item alone (one of LEFT_ORDER), at the database's revision."""
    if item.blocked_by == UNSAFE:
        return UNSAFE
    if (found := step(item.result, revision)) is not None:
        return found.value
    return INFORMATIONAL if item.result.severity.value == "info" else Step.PERSON.value


def left_counts(plan: FixPlan) -> dict[str, int]:
    """Gives, per reason, how many findings `fix --apply` leaves alone."""
    revision = plan.report.database.alembic_revision
    counts: dict[str, int] = {}
    for item in plan.items:
        if not item.will_apply:
            reason = why_left(item, revision)
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def left_split(counts: dict[str, int]) -> str:
    """Gives the counts in words: "6 need --unsafe, 3 wait for migrate validate, 17 need a person"."""
    return ", ".join(f"{counts[r]} {_LEFT_SHORT[r]}" for r in LEFT_ORDER if counts.get(r))
