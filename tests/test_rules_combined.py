"""Rules run together give what each gives alone: no shared alias, no shared join, no lost finding.

Each rule case runs alone in test_rule_cases; these tests run them together, where a combined pass could
let one rule's SQL read another's join (issue 13.1: REF008 read REF001's `users` join and passed).
"""

from __future__ import annotations

from typing import Any

import pytest

from mita_integrity.check import CheckRequest, run_check
from mita_integrity.connection import Database, connect
from mita_integrity.findings import Result

USER = "00000000-0000-0000-0000-000000000001"


def _execute(db: Database, statement: str) -> None:
    with connect(db) as conn:
        conn.execute(statement.encode())


def _by_code(results: tuple[Result, ...] | list[Result], code: str) -> Result:
    found = [r for r in results if r.code == code]
    assert len(found) == 1, found
    return found[0]


def _counts(db: Database, select: list[str], **options: Any) -> dict[tuple[str, str], tuple[str, int, tuple[str, ...]]]:
    report = run_check(db, CheckRequest(select=select, **options))
    return {(r.code, r.table): (r.status.value, r.count, tuple(sorted(r.sample))) for r in report.results}


GOAL_ORPHAN = f"""
ALTER TABLE transactions DROP CONSTRAINT fk_transactions_goal_id;
INSERT INTO users (id, email, password_hash) VALUES ('{USER}', 'ann@example.com', 'h');
INSERT INTO transactions (id, user_id, category, amount, spent_at, goal_id) VALUES
  ('10000000-0000-0000-0000-000000000002', '{USER}', 'savings', 5, now(), 'dead0000-0000-0000-0000-000000000002');
"""


@pytest.mark.parametrize("select", [["REF008"], ["REF001", "REF008"], ["REF", "SDL002"], []])
def test_an_orphan_goal_is_found_whatever_runs_beside_it(baseline_db: Database, select: list[str]) -> None:
    """Issue 13.1: with REF001 in the same pass, REF008 tested the users join and reported pass 0."""
    _execute(baseline_db, GOAL_ORPHAN)
    report = run_check(baseline_db, CheckRequest(select=select))
    ref008 = _by_code(report.results, "REF008")
    assert (ref008.status.value, ref008.count) == ("fail", 1)
    assert ref008.sample == ("10000000-0000-0000-0000-000000000002",)


def test_an_orphan_completion_is_found_beside_its_siblings(baseline_db: Database) -> None:
    """REF006 (habit) and REF007 (user) read the same table through different parents."""
    _execute(baseline_db, f"""
ALTER TABLE habit_completions DROP CONSTRAINT habit_completions_habit_id_fkey;
ALTER TABLE habit_completions DROP CONSTRAINT habit_completions_user_id_fkey;
INSERT INTO users (id, email, password_hash) VALUES ('{USER}', 'ann@example.com', 'h');
INSERT INTO habits (id, user_id, title) VALUES ('50000000-0000-0000-0000-000000000001', '{USER}', 'Walk');
INSERT INTO habit_completions (id, habit_id, user_id) VALUES
  ('51000000-0000-0000-0000-000000000001', 'dead0000-0000-0000-0000-000000000009', '{USER}'),
  ('51000000-0000-0000-0000-000000000002', '50000000-0000-0000-0000-000000000001',
   'dead0000-0000-0000-0000-000000000008'),
  ('51000000-0000-0000-0000-000000000003', '50000000-0000-0000-0000-000000000001', '{USER}');
""")
    alone = {code: _counts(baseline_db, [code])[(code, "habit_completions")] for code in ("REF006", "REF007")}
    together = _counts(baseline_db, ["REF006", "REF007"])
    assert alone == {"REF006": ("fail", 1, ("51000000-0000-0000-0000-000000000001",)),
                     "REF007": ("fail", 1, ("51000000-0000-0000-0000-000000000002",))}
    assert {c: together[(c, "habit_completions")] for c in alone} == alone
