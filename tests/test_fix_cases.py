"""Every rule case of a repairable rule, repaired: after `fix --apply` the rule passes, nothing is lost
(live + archived = before), the archive holds every change, and `undo` gives back the exact content.

A case may say `fix_after = N` when the repair is right to leave N violations (for example an invalid
currency whose user has no valid currency either), and `undo_conflicts = N` when a constraint of its
setup forbids putting N rows back (undo must then list them, not fail, and restore the rest).
"""

from __future__ import annotations

import pytest

from mita_integrity.database.connection import Database
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.repairs import REPAIRS
from mita_integrity.repair.undo import UndoMode, undo_run

from .dbstate import archived, assert_nothing_lost, checksums
from .test_rule_cases import CASES, RuleCase, _prepare


def _repairable(case: RuleCase) -> bool:
    failing = any(int(e.get("count", 0)) > 0 and e.get("status", "fail") == "fail" for e in case.expect)
    return (case.code in REPAIRS and failing and not case.xfail and not case.requires_extension
            and "since" not in case.options)


FIX_CASES = [pytest.param(c, id=c.id) for c in CASES if _repairable(c)]


@pytest.mark.parametrize("case", FIX_CASES)
def test_fix_case(baseline_db: Database, case: RuleCase) -> None:
    _prepare(baseline_db, case)
    before = checksums(baseline_db)
    request = FixRequest(select=[case.select], unsafe=True, batch_size=2,
                         budget_days=int(case.options.get("budget_days", 30)),
                         day_boundary=str(case.options.get("day_boundary", "utc")))
    plan = plan_fix(baseline_db, request)
    assert plan.to_apply, f"{case.description}: the plan has nothing to apply"
    outcome = apply_fix(baseline_db, plan, request)
    assert outcome.status == "completed"
    left = {(i.item.code, i.item.table): i.after for i in outcome.items if i.item.code == case.code}
    want = {(case.code, e["table"]): int(e.get("fix_after", 0)) for e in case.expect if int(e.get("count", 0)) > 0}
    assert {k: left.get(k) for k in want} == want, f"{case.description}: violations left after the fix"
    archive = archived(baseline_db, outcome.run_id)
    assert sum(archive.values()) == outcome.archived == outcome.changed > 0
    after = checksums(baseline_db)
    assert_nothing_lost({t: n for t, (n, _) in before.items()}, {t: n for t, (n, _) in after.items()}, archive)

    undone = undo_run(baseline_db, outcome.run_id, batch_size=3, mode=UndoMode.PARTIAL)
    conflicts = sum(int(e.get("undo_conflicts", 0)) for e in case.expect)
    assert len(undone.conflicts) == conflicts
    assert all("constraint forbids" in c.reason for c in undone.conflicts)
    assert undone.restored == outcome.archived - conflicts
    if not conflicts:
        assert checksums(baseline_db) == before, f"{case.description}: undo did not restore the exact content"
