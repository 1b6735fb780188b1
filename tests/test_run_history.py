"""One line per run in `runs`: a fix still at work and one that was cut off read differently."""

from __future__ import annotations

from datetime import UTC, datetime

from mita_integrity.run_history import RunRow, describe


def _fix(status: str, summary: dict[str, object]) -> RunRow:
    return RunRow("1a756534", "fix", status, datetime(2026, 12, 5, tzinfo=UTC), None, "mita", summary)


def test_a_fix_at_work_and_a_fix_cut_off() -> None:
    assert describe(_fix("running", {"archived_so_far": 1})) == "running: 1 row changed and archived so far"
    assert describe(_fix("interrupted", {"archived_so_far": 46_500})) == (
        "stopped before the end: 46,500 rows changed and archived so far (re-run fix to finish, or undo this run)")
    assert describe(_fix("completed", {"changed": 2, "rules": [{"code": "REF001", "changed": 2}]})) == (
        "2 rows changed (REF001)")
