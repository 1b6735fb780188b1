"""`fix`, the plan: which failing rules a repair would mend, how many rows, with what SQL — nothing changed.

The plan is made from a `check` of the chosen rules (one read-only snapshot), so its counts are the
check's counts. Applying it is fix_apply.py's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..check import engine
from ..check.project import Project
from ..check.rules.base import Rule
from ..check.rules.context import CheckContext, CheckOptions, Schema, load_schema
from ..check.run import CheckRequest, options_for, run_check
from ..database.connection import Database, connect, transaction
from ..database.errors import UsageError
from ..findings import FixSafety, Report, Result
from .repairs import REPAIRS, RepairContext, order_key


@dataclass(frozen=True)
class FixRequest:
    """Everything `fix` was asked for."""

    select: Sequence[str] = ()
    ignore: Sequence[str] = ()
    unsafe: bool = False
    batch_size: int = 5_000
    max_rows: int | None = None
    budget_days: int = 30
    day_boundary: str = "utc"
    lock_timeout_ms: int = 2_000
    statement_timeout_ms: int = 300_000
    origin: str = ""  # who asked: empty for the CLI, a migration's revision for its clean-up
    project: Project = field(default_factory=Project)  # the team's rules and rule settings (the CLI's)

    def check_request(self, select: Sequence[str] | None = None) -> CheckRequest:
        return CheckRequest(select=self.select if select is None else select, ignore=self.ignore if select is None
                            else (), sample=10, budget_days=self.budget_days, day_boundary=self.day_boundary,
                            project=self.project)

    def options(self) -> dict[str, Any]:
        return {"select": list(self.select), "ignore": list(self.ignore), "unsafe": self.unsafe,
                "batch_size": self.batch_size, "max_rows": self.max_rows, "budget_days": self.budget_days,
                "day_boundary": self.day_boundary, **({"migration": self.origin} if self.origin else {})}


@dataclass(frozen=True)
class PlanItem:
    """One failing rule (on one table) and what fix would do about it."""

    result: Result
    rule: Rule
    safety: FixSafety
    action: str  # what the repair does, or why there is none
    sql: tuple[str, ...]  # candidates query, then the statements of one batch
    will_apply: bool  # safe, or unsafe with --unsafe

    @property
    def code(self) -> str:
        return self.result.code

    @property
    def table(self) -> str:
        return self.result.table

    @property
    def rows(self) -> int:
        return self.result.count

    @property
    def blocked_by(self) -> str:
        if self.will_apply:
            return ""
        return "needs --unsafe" if self.safety is FixSafety.UNSAFE else "needs a person"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "table": self.table, "rows": self.rows, "unit": self.result.unit,
                "groups": self.result.groups, "safety": self.safety.value, "action": self.action,
                "will_apply": self.will_apply, "blocked_by": self.blocked_by or None,
                "sample": list(self.result.sample), "sql": list(self.sql)}


@dataclass(frozen=True)
class FixPlan:
    """The plan: the check it came from, the items to apply and the findings only a person can resolve."""

    report: Report
    items: tuple[PlanItem, ...]
    schema: Schema = field(repr=False)
    options: CheckOptions = field(repr=False)

    @property
    def to_apply(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.will_apply)

    @property
    def rows_to_change(self) -> int:
        return sum(i.rows for i in self.to_apply)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": None, "dry_run": True, "rows_to_change": self.rows_to_change,
                "items": [i.to_json() for i in self.items]}


def validate(request: FixRequest) -> None:
    """Raises UsageError on a bad batch size, row limit or timeout."""
    if not 1 <= request.batch_size <= 1_000_000:
        raise UsageError(f"--batch-size {request.batch_size} is out of range", "use 1 to 1,000,000 (default 5,000)")
    if request.max_rows is not None and request.max_rows < 0:
        raise UsageError("--max-rows cannot be negative")
    if request.lock_timeout_ms < 0 or request.statement_timeout_ms < 0:
        raise UsageError("timeouts cannot be negative")
    if not request.project.select(request.select, request.ignore):
        raise UsageError("--select and --ignore leave no rule to repair", "ignore fewer rules")


def _concrete(ctx: CheckContext, rules: Sequence[Rule]) -> dict[tuple[str, str], Rule]:
    """Gives the concrete rule behind each (code, table) a check can report."""
    out: dict[tuple[str, str], Rule] = {}
    for rule in engine.expanded(ctx, rules):
        out.setdefault((rule.code, str(rule.table or "")), rule)
        out.setdefault((rule.code, ""), rule)
    return out


def plan_fix(db: Database, request: FixRequest) -> FixPlan:
    """Checks the chosen rules and gives the repair plan of the failing ones (nothing is changed)."""
    validate(request)
    report = run_check(db, request.check_request())
    options = options_for(request.check_request())
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        schema = load_schema(cur)
        rules = _concrete(CheckContext(cur, schema, options), request.project.select(request.select, request.ignore))
    ctx = RepairContext(schema, options)
    items = []
    for result in sorted((r for r in report.results if r.failed), key=lambda r: (order_key(r.code), r.table)):
        rule = rules.get((result.code, result.table)) or rules[(result.code, "")]
        repair = REPAIRS.get(result.code)
        if repair is None:
            items.append(PlanItem(result, rule, FixSafety.NONE, rule.repair, (), False))
            continue
        sql = (repair.candidates_sql(ctx, rule), *repair.batch_sql(ctx, rule))
        will = repair.safety is FixSafety.SAFE or request.unsafe
        items.append(PlanItem(result, rule, repair.safety, repair.action, sql, will))
    plan = FixPlan(report, tuple(items), schema, options)
    if request.max_rows is not None and plan.rows_to_change > request.max_rows:
        raise UsageError(f"the plan would change {plan.rows_to_change:,} rows, more than --max-rows "
                         f"{request.max_rows:,}; nothing was changed",
                         "narrow it with --select, or raise --max-rows")
    return plan
