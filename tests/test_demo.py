"""`demo` end to end on the session's server (the embedded server is covered by test_embedded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

from .conftest import PgServer


def test_demo_builds_checks_repairs_and_rechecks(capsys: pytest.CaptureFixture[str], pg: PgServer,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITA_INTEGRITY_HOME", str(tmp_path))
    url = build_url(pg.admin.parsed.params, mask_password=False)
    for _ in range(2):  # a second run recreates the database
        code = main(["--db", url, "demo", "--users", "200", "--days", "10"])
        out, err = capsys.readouterr()
        assert code == 0, err
    assert "1. created a fresh database mita_demo" in out
    assert "2. migrated it to 0021_add_habit_completions" in out
    assert "3. seeded 200 users" in out
    assert "4. checked it read-only" in out
    assert " 1  Overview" in out and "verdict    worst finding: critical" in out
    assert "5. planned the repairs (a dry run)" in out and "Repair plan (dry run: nothing changed)" in out
    assert "6. applied the safe repairs in batches" in out
    assert "rules with a safe repair still failing: none" in out
    assert "8. migrated to 0027_harden_spent_trigger online" in out
    assert "9. checked again and recorded both checks" in out and "the HTML report with trends: " in out
    pages = list((tmp_path / "reports").glob("*.html"))
    assert pages and "<svg" in pages[-1].read_text()
    assert ("10. verified the success metrics: 8 of 11 pass; orphans, checks-0024, referential-integrity wait for a "
            "person") in out
    assert "PASS  cascade-probe" in out and "FAIL  checks-0024" in out
    assert "export DATABASE_URL=" in out and "mita-integrity undo " in out
    demo = pg.database("mita_demo")
    # The suggested undo works as its comment says: --apply only where nothing conflicts (issue 16, item 1).
    line = next(x for x in out.splitlines() if x.strip().startswith("mita-integrity undo "))
    command, comment = line.split("#", 1)
    before = _snapshot(demo)
    code = main(["--db", build_url(demo.parsed.params, mask_password=False), *command.split()[1:]])
    shown = capsys.readouterr().out
    if "--apply" in command:
        assert code == 0 and "restored" in shown
    else:
        assert "a dry run" in comment and "nothing to apply" in comment
        assert code == 1 and "dry run: nothing changed" in shown and "conflict:" in shown
        assert _snapshot(demo) == before
    with connect(demo) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()
        version = conn.execute("SELECT version_num FROM integrity.alembic_version").fetchone()
    assert users is not None and users[0] >= 200 and version == ("0027_harden_spent_trigger",)
    pg.drop_database("mita_demo")


def _snapshot(db: Database) -> tuple[int, ...]:
    with connect(db) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM daily_plan), (SELECT count(*) FROM goals), "
                           "(SELECT count(*) FROM integrity.runs), (SELECT count(*) FROM integrity.archive "
                           "WHERE restored_at IS NOT NULL)").fetchone()
    assert row is not None
    return tuple(int(v) for v in row)
