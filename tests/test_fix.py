"""`fix` and `undo` beyond the per-rule cases: merge and recompute content, dependents, conflicts, the CLI,
privileges, limits, and the Done-when of issue 4 on a database seeded with every defect."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from mita_integrity.check.rule_registry import ALL_RULES
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.findings import FixSafety
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.repairs import REPAIRS
from mita_integrity.repair.undo import UndoMode, undo_run
from mita_integrity.seed import SeedOptions, seed_database

from .dbstate import archived, assert_nothing_lost, checksums, row_counts
from .dbstate import cli_url as _url
from .dbstate import run_sql as _sql

ANN = "00000000-0000-0000-0000-000000000001"
USER = f"INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');"


def _fix(db: Database, *select: str, unsafe: bool = False, batch_size: int = 5000) -> Any:
    request = FixRequest(select=select, unsafe=unsafe, batch_size=batch_size)
    return apply_fix(db, plan_fix(db, request), request)


def test_every_repairable_rule_has_a_repair_of_its_documented_safety() -> None:
    documented = {r.code: r.repair_safety for r in ALL_RULES if r.repair_safety is not FixSafety.NONE}
    assert {code: repair.safety for code, repair in REPAIRS.items()} == documented


def test_duplicates_merge_into_the_earliest_row_summing_spent(baseline_db: Database) -> None:
    _sql(baseline_db, USER + f"""
        INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount, daily_budget, created_at)
        VALUES ('30000000-0000-0000-0000-000000000002', '{ANN}', '2026-01-11 14:30+00', 'food', 50, 7, 10,
                '2026-01-02'),
               ('30000000-0000-0000-0000-000000000001', '{ANN}', '2026-01-11 00:00+00', 'food', 40, 5, 12,
                '2026-01-01'),
               ('30000000-0000-0000-0000-000000000003', '{ANN}', '2026-01-11 09:00+00', 'food', 45, 3, NULL,
                '2026-01-03');""")
    outcome = _fix(baseline_db, "DUP002")
    rows = _sql(baseline_db, "SELECT id::text, date, planned_amount, spent_amount, daily_budget FROM daily_plan")
    assert len(rows) == 1
    keeper_id, date, planned, spent, budget = rows[0]
    assert keeper_id == "30000000-0000-0000-0000-000000000001"  # the earliest created_at
    assert date.isoformat() == "2026-01-11T00:00:00+00:00"
    assert (planned, spent, budget) == (Decimal("50.00"), Decimal("15.00"), Decimal("12.00"))
    archive = _sql(baseline_db, "SELECT action, pk->>'id', before->>'spent_amount', after->>'spent_amount' "
                                "FROM integrity.archive ORDER BY id")
    assert sorted(archive) == [
        ("delete", "30000000-0000-0000-0000-000000000002", "7.00", None),
        ("delete", "30000000-0000-0000-0000-000000000003", "3.00", None),
        ("update", "30000000-0000-0000-0000-000000000001", "5.00", "15.00"),
    ]
    assert archive[-1][0] == "update"  # the copies go first, so a unique key never sees two rows
    assert outcome.items[0].after == 0


def test_recompute_fixes_drift_and_adds_the_missing_plan_row(baseline_db: Database) -> None:
    day = "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    _sql(baseline_db, USER + f"""
        INSERT INTO daily_plan (id, user_id, date, category, spent_amount)
        VALUES ('30000000-0000-0000-0000-000000000001', '{ANN}', {day}, 'food', 99);
        INSERT INTO transactions (id, user_id, category, amount, spent_at) VALUES
          ('10000000-0000-0000-0000-000000000001', '{ANN}', 'food', 12.5, {day} + interval '1 hour'),
          ('10000000-0000-0000-0000-000000000002', '{ANN}', 'food', 2.5, {day} + interval '2 hour'),
          ('10000000-0000-0000-0000-000000000003', '{ANN}', 'taxi', 8, {day} + interval '3 hour');""")
    before = checksums(baseline_db)
    outcome = _fix(baseline_db, "BUD001")
    assert outcome.items[0].after == 0
    rows = dict(_sql(baseline_db, "SELECT category, spent_amount FROM daily_plan"))
    assert rows == {"food": Decimal("15.00"), "taxi": Decimal("8.00")}
    assert archived(baseline_db, outcome.run_id) == {("daily_plan", "update"): 1, ("daily_plan", "insert"): 1}
    assert undo_run(baseline_db, outcome.run_id).conflicts == []
    assert checksums(baseline_db) == before


def test_deleting_an_orphan_parent_archives_its_cascaded_and_nulled_dependents(baseline_db: Database) -> None:
    ghost = "00000000-0000-0000-0000-0000000000ff"
    _sql(baseline_db, USER + f"""
        ALTER TABLE goals DROP CONSTRAINT fk_goals_user_id;
        INSERT INTO goals (id, user_id, title, target_amount) VALUES
          ('20000000-0000-0000-0000-000000000001', '{ghost}', 'ghost goal', 100);
        INSERT INTO transactions (id, user_id, category, amount, spent_at, goal_id) VALUES
          ('10000000-0000-0000-0000-000000000001', '{ANN}', 'savings', 10, now(),
           '20000000-0000-0000-0000-000000000001');
        INSERT INTO habits (id, user_id, title) VALUES ('40000000-0000-0000-0000-000000000001', '{ghost}', 'walk');
        INSERT INTO habit_completions (id, habit_id, user_id, completed_at) VALUES
          ('50000000-0000-0000-0000-000000000001', '40000000-0000-0000-0000-000000000001', '{ANN}', now());""")
    before = checksums(baseline_db)
    outcome = _fix(baseline_db, "REF002", "REF005")
    assert archived(baseline_db, outcome.run_id) == {
        ("goals", "delete"): 1, ("transactions", "update"): 1,  # ON DELETE SET NULL, archived first
        ("habits", "delete"): 1, ("habit_completions", "delete"): 1,  # ON DELETE CASCADE, archived first
    }
    assert _sql(baseline_db, "SELECT goal_id FROM transactions") == [(None,)]
    assert_nothing_lost({t: n for t, (n, _) in before.items()}, row_counts(baseline_db),
                        archived(baseline_db, outcome.run_id))
    assert undo_run(baseline_db, outcome.run_id).conflicts == []
    assert checksums(baseline_db) == before


def test_undo_leaves_a_row_changed_since_and_restores_the_rest(baseline_db: Database) -> None:
    _sql(baseline_db, USER + f"""
        INSERT INTO goals (id, user_id, title, target_amount, created_at, last_updated) VALUES
          ('20000000-0000-0000-0000-000000000001', '{ANN}', 'a', 100, '2026-02-01', '2026-01-01'),
          ('20000000-0000-0000-0000-000000000002', '{ANN}', 'b', 100, '2026-02-01', '2026-01-01');""")
    outcome = _fix(baseline_db, "TIM002")
    _sql(baseline_db, "UPDATE goals SET title = 'renamed' WHERE id = '20000000-0000-0000-0000-000000000002'")
    undone = undo_run(baseline_db, outcome.run_id, mode=UndoMode.PARTIAL)
    assert undone.restored == 1
    assert [(c.pk, c.reason) for c in undone.conflicts] == [
        ({"id": "20000000-0000-0000-0000-000000000002"}, "changed again since the fix")]
    assert dict(_sql(baseline_db, "SELECT title, last_updated::date::text FROM goals")) == {
        "a": "2026-01-01", "renamed": "2026-02-01"}


def test_dry_run_changes_nothing_and_creates_no_schema(capsys: pytest.CaptureFixture[str],
                                                       baseline_db: Database) -> None:
    _sql(baseline_db, f"INSERT INTO habits (id, user_id, title) VALUES "
                      f"('40000000-0000-0000-0000-000000000001', '{ANN}', 'walk')")
    before = checksums(baseline_db)
    assert main(["--db", _url(baseline_db), "fix", "--select", "REF005"]) == 0
    out = capsys.readouterr().out
    assert "REF005" in out and "FOR UPDATE OF t SKIP LOCKED" in out and "INSERT INTO integrity.archive" in out
    assert checksums(baseline_db) == before
    assert _sql(baseline_db, "SELECT to_regclass('integrity.runs')") == [(None,)]


def test_cli_apply_runs_and_undo(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    _sql(baseline_db, f"INSERT INTO habits (id, user_id, title) VALUES "
                      f"('40000000-0000-0000-0000-000000000001', '{ANN}', 'walk')")
    before = checksums(baseline_db)
    db = _url(baseline_db)
    assert main(["--db", db, "fix", "--apply", "--select", "REF005", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["changed"], result["rules"][0]["after"]) == ("completed", 1, 0)
    assert main(["--db", db, "runs", "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["kind"], r["status"]) for r in runs] == [(result["run_id"], "fix", "completed")]
    assert main(["--db", db, "undo", result["run_id"][:8], "--apply"]) == 0
    assert "1 of 1 archived rows" in capsys.readouterr().out
    assert checksums(baseline_db) == before
    assert main(["--db", db, "undo", result["run_id"]]) == 3
    assert "already undone" in capsys.readouterr().err


@pytest.mark.parametrize("args,words", [
    (["undo", "nonsense"], "is not a run id"),
    (["undo", "0123456789abcdef"], "no run"),
    (["fix", "--batch-size", "0"], "--batch-size"),
    (["fix", "--select", "NOPE999"], "no rule has that code"),
    (["fix", "--apply", "--select", "REF005", "--max-rows", "0"], "more than --max-rows"),
])
def test_bad_input_is_one_line_and_changes_nothing(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                   args: list[str], words: str) -> None:
    _sql(baseline_db, f"INSERT INTO habits (id, user_id, title) VALUES "
                      f"('40000000-0000-0000-0000-000000000001', '{ANN}', 'walk')")
    before = checksums(baseline_db)
    assert main(["--db", _url(baseline_db), *args]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert checksums(baseline_db) == before


def test_a_select_only_role_cannot_apply_and_nothing_changes(capsys: pytest.CaptureFixture[str],
                                                             baseline_db: Database) -> None:
    _sql(baseline_db, f"INSERT INTO habits (id, user_id, title) VALUES "
                      f"('40000000-0000-0000-0000-000000000001', '{ANN}', 'walk')")
    role = f"mita_ro_{baseline_db.dbname[-8:]}"
    _sql(baseline_db, f"CREATE ROLE {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
                      f"REVOKE CREATE ON DATABASE \"{baseline_db.dbname}\" FROM PUBLIC")
    before = checksums(baseline_db)
    try:
        url = _url(baseline_db, options=f"-c role={role}")
        assert main(["--db", url, "fix", "--select", "REF005"]) == 0  # the dry run only reads
        capsys.readouterr()
        assert main(["--db", url, "fix", "--apply", "--select", "REF005"]) == 3
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"role {role} lacks" in err and "nothing was changed" in err, err
        assert checksums(baseline_db) == before
        assert _sql(baseline_db, "SELECT to_regclass('integrity.runs')") == [(None,)]
    finally:
        _sql(baseline_db, f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_seeded_defects_fixed_then_undone_exactly(baseline_db: Database) -> None:
    """Issue 4's Done-when: after fix --apply no rule with a safe repair fails; undo restores every table."""
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=40, days=20, seed=11, corrupt=True))
    before = checksums(baseline_db)
    outcome = _fix(baseline_db, batch_size=7)
    assert outcome.status == "completed" and outcome.changed > 0
    report = run_check(baseline_db, CheckRequest())
    failing_safe = sorted({r.code for r in report.results if r.failed and r.fix_safety is FixSafety.SAFE})
    assert failing_safe == []
    assert_nothing_lost({t: n for t, (n, _) in before.items()}, row_counts(baseline_db),
                        archived(baseline_db, outcome.run_id))
    undone = undo_run(baseline_db, outcome.run_id, batch_size=11)
    assert undone.conflicts == [] and undone.restored == outcome.archived
    assert checksums(baseline_db) == before


def test_a_row_locked_by_another_session_is_left_for_a_rerun(baseline_db: Database) -> None:
    ghost = "00000000-0000-0000-0000-0000000000ff"
    _sql(baseline_db, "INSERT INTO habits (id, user_id, title) SELECT md5(g::text)::uuid, "
                      f"'{ghost}', 'walk' FROM generate_series(1, 20) g")
    locked = _sql(baseline_db, "SELECT id FROM habits ORDER BY id LIMIT 1")[0][0]
    with connect(baseline_db) as other:  # an application transaction holding one of the rows
        other.execute("SELECT 1 FROM habits WHERE id = %s FOR UPDATE", (locked,))
        outcome = _fix(baseline_db, "REF005", batch_size=5)
        other.rollback()
    item = outcome.items[0]
    assert (item.done.changed, item.done.skipped, item.after, item.passes) == (19, 1, 1, 3)
    again = _fix(baseline_db, "REF005")
    assert again.changed == 1 and again.items[0].after == 0
