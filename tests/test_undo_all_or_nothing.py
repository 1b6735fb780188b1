"""`undo` is a dry run by default, `--apply` restores all or nothing, `--partial` what it can; a merge
(DUP002/CAL001: the keeper and its removed copies) is restored as one unit (issue 16, item 1)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.undo import UndoMode, undo_run

from .dbstate import checksums
from .dbstate import cli_url as _url
from .dbstate import run_sql as _sql

ANN = "00000000-0000-0000-0000-000000000001"
KEEPER = "30000000-0000-0000-0000-000000000001"
COPY = "30000000-0000-0000-0000-000000000002"
# Two goals whose timestamps TIM002 repairs, and a duplicated calendar key DUP002 merges (spent 100 + 47.65).
SETUP = f"""
INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
INSERT INTO goals (id, user_id, title, target_amount, created_at, last_updated) VALUES
  ('20000000-0000-0000-0000-000000000001', '{ANN}', 'a', 100, '2026-02-01', '2026-01-01'),
  ('20000000-0000-0000-0000-000000000002', '{ANN}', 'b', 100, '2026-02-01', '2026-01-01');
INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount, created_at) VALUES
  ('{KEEPER}', '{ANN}', '2026-01-11 00:00+00', 'food', 40, 100.00, '2026-01-01'),
  ('{COPY}', '{ANN}', '2026-01-11 09:00+00', 'food', 45, 47.65, '2026-01-02');"""
SPENT = f"SELECT sum(spent_amount) FROM daily_plan WHERE user_id = '{ANN}' AND category = 'food'"


def _fixed(db: Database) -> str:
    _sql(db, SETUP)
    request = FixRequest(select=("TIM002", "DUP002"))
    outcome = apply_fix(db, plan_fix(db, request), request)
    assert outcome.changed == 4
    return outcome.run_id


def _edit_keeper(db: Database) -> None:
    _sql(db, f"UPDATE daily_plan SET planned_amount = 60 WHERE id = '{KEEPER}'")


def test_undo_without_apply_is_a_dry_run_naming_every_conflict(capsys: pytest.CaptureFixture[str],
                                                                baseline_db: Database) -> None:
    run = _fixed(baseline_db)
    _edit_keeper(baseline_db)
    before = checksums(baseline_db)
    runs_before = _sql(baseline_db, "SELECT count(*) FROM integrity.runs")
    assert main(["--db", _url(baseline_db), "undo", run]) == 1
    out = capsys.readouterr().out
    assert "dry run: nothing changed" in out and "2 of 4 archived rows would be restored; 2 conflicts" in out
    assert f'daily_plan {{"id": "{KEEPER}"}} (update): changed again since the fix' in out
    assert f'daily_plan {{"id": "{COPY}"}} (delete): part of a merge' in out
    assert f"undo {run} --partial" in out
    assert checksums(baseline_db) == before
    assert _sql(baseline_db, "SELECT count(*) FROM integrity.runs") == runs_before  # a dry run records nothing


def test_apply_restores_nothing_while_a_row_conflicts(capsys: pytest.CaptureFixture[str],
                                                      baseline_db: Database) -> None:
    run = _fixed(baseline_db)
    _edit_keeper(baseline_db)
    before = checksums(baseline_db)
    assert main(["--db", _url(baseline_db), "undo", run, "--apply", "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["applied"], result["restored"], result["restorable"], result["conflict_count"]) == (
        False, 0, 2, 2)
    assert checksums(baseline_db) == before
    assert _sql(baseline_db, "SELECT count(*) FROM integrity.archive WHERE restored_at IS NOT NULL") == [(0,)]


def test_partial_keeps_a_merge_whole_so_spending_is_not_counted_twice(baseline_db: Database) -> None:
    run = _fixed(baseline_db)
    assert _sql(baseline_db, SPENT) == [(Decimal("147.65"),)]
    _edit_keeper(baseline_db)
    undone = undo_run(baseline_db, run, batch_size=1, mode=UndoMode.PARTIAL)
    assert undone.applied and undone.restored == 2  # the two goals
    assert sorted((c.pk["id"], c.action) for c in undone.conflicts) == [(KEEPER, "update"), (COPY, "delete")]
    assert _sql(baseline_db, SPENT) == [(Decimal("147.65"),)]  # not 191.94 (the copy back beside the keeper)
    assert _sql(baseline_db, "SELECT title, last_updated::date::text FROM goals ORDER BY 1") == [
        ("a", "2026-01-01"), ("b", "2026-01-01")]


def test_apply_without_conflict_restores_everything(capsys: pytest.CaptureFixture[str],
                                                    baseline_db: Database) -> None:
    _sql(baseline_db, SETUP)
    before = checksums(baseline_db)
    request = FixRequest(select=("TIM002", "DUP002"))
    run = apply_fix(baseline_db, plan_fix(baseline_db, request), request).run_id
    db = _url(baseline_db)
    assert main(["--db", db, "undo", run]) == 0
    assert f"4 of 4 archived rows would be restored.\nRestore them with: mita-integrity undo {run} --apply" in (
        capsys.readouterr().out)
    assert main(["--db", db, "undo", run, "--apply"]) == 0
    assert "4 of 4 archived rows" in capsys.readouterr().out
    assert checksums(baseline_db) == before
