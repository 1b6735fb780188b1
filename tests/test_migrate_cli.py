"""`migrate` through the CLI and through plain `alembic`, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url
from mita_integrity.migration import command as migrate


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def _cli(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, str, str]:
    code = main(["--db", _url(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _table_count(db: Database) -> int:
    with connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                           "AND tablename <> 'alembic_version'").fetchone()
    return int(row[0]) if row else 0


def test_upgrade_current_history_downgrade(capsys: pytest.CaptureFixture[str], empty_db: Database) -> None:
    code, out, err = _cli(capsys, empty_db, "migrate", "current")
    assert code == 0 and out.startswith("none: an empty database")
    code, out, err = _cli(capsys, empty_db, "migrate", "upgrade", "0021_add_habit_completions_table")
    assert code == 0, err
    assert "upgraded: <base> -> 0021_add_habit_completions" in out
    assert "Running upgrade" in err
    assert _table_count(empty_db) == 26
    code, out, err = _cli(capsys, empty_db, "migrate", "current")
    assert out.splitlines() == ["mita-integrity: 0021_add_habit_completions",
                                "application:    none (no alembic_version)"]
    code, out, err = _cli(capsys, empty_db, "migrate", "upgrade")
    assert code == 0 and "upgraded: 0021_add_habit_completions -> 0027_harden_spent_trigger" in out, err
    code, out, err = _cli(capsys, empty_db, "migrate", "current")
    assert out.splitlines()[0] == "mita-integrity: 0027_harden_spent_trigger (head)"
    with connect(empty_db) as conn:  # standalone: the chain's state is in the tool's own table only
        assert conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)
        assert conn.execute("SELECT version_num FROM integrity.alembic_version").fetchall() == [
            ("0027_harden_spent_trigger",)]
    code, out, err = _cli(capsys, empty_db, "migrate", "upgrade")
    assert code == 0 and "already at 0027_harden_spent_trigger" in out
    code, out, err = _cli(capsys, empty_db, "migrate", "history")
    assert "<base> -> 0021_add_habit_completions (file 0021_add_habit_completions_table.py)" in out
    assert "0025_add_daily_plan_spent_trigger -> 0026_complete_user_foreign_keys" in out
    assert "0026_complete_user_foreign_keys -> 0027_harden_spent_trigger (head)" in out
    code, out, err = _cli(capsys, empty_db, "migrate", "downgrade", "-2")
    assert code == 0 and "downgraded: 0027_harden_spent_trigger -> 0025_add_daily_plan_spent_trigger" in out
    code, out, err = _cli(capsys, empty_db, "migrate", "downgrade", "0021_add_habit_completions_table")
    assert code == 0 and "downgraded: 0025_add_daily_plan_spent_trigger -> 0021_add_habit_completions" in out, err
    assert _table_count(empty_db) == 26


def test_stamp_adopts_and_base_unstamps(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    code, out, err = _cli(capsys, baseline_db, "migrate", "stamp", "base")
    assert code == 0 and "stamped: 0021_add_habit_completions -> <base>" in out
    assert migrate.current(baseline_db).revision is None
    assert _table_count(baseline_db) == 26  # stamping never touches the tables
    code, out, err = _cli(capsys, baseline_db, "migrate", "stamp", "0021_add_habit_completions")
    assert code == 0 and migrate.current(baseline_db).revision == "0021_add_habit_completions"


def test_backup_runs_pg_dump_of_the_servers_major_first(capsys: pytest.CaptureFixture[str], empty_db: Database,
                                                        tmp_path: Path) -> None:
    dump = tmp_path / "before.dump"
    code, out, err = _cli(capsys, empty_db, "migrate", "upgrade", "--backup", str(dump))
    assert code == 0, err
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert f"backup written to {dump}" in err
    with connect(empty_db) as conn:
        major = conn.info.server_version // 10000
    tool = migrate.pg_dump_binary(major)
    listing = subprocess.run([str(tool.with_name("pg_restore")), "--list", str(dump)], capture_output=True, text=True)
    assert listing.returncode == 0


def test_plain_alembic_with_the_package_ini(empty_db: Database) -> None:
    url = _url(empty_db) + ("&" if "?" in _url(empty_db) else "?") + "prepared_statement_cache_size=0"
    env = dict(os.environ, DATABASE_URL=url)
    alembic = [sys.executable, "-m", "alembic", "-c", str(migrate.ALEMBIC_INI)]
    up = subprocess.run([*alembic, "upgrade", "head"], capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr
    assert _table_count(empty_db) == 26
    cur = subprocess.run([*alembic, "current"], capture_output=True, text=True, env=env)
    assert "0027_harden_spent_trigger (head)" in cur.stdout
    down = subprocess.run([*alembic, "downgrade", "0021_add_habit_completions"], capture_output=True, text=True,
                          env=env)
    assert down.returncode == 0, down.stderr
    assert _table_count(empty_db) == 26
    for below in ("base", "-1"):  # the baseline is the floor for plain alembic too
        refused = subprocess.run([*alembic, "downgrade", below], capture_output=True, text=True, env=env)
        assert refused.returncode != 0 and "drop every MITA table" in refused.stderr, refused.stderr
        assert _table_count(empty_db) == 26


def test_console_script_is_installed_and_masks(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("mita-integrity")
    proc = subprocess.run([str(exe), "--db", "postgresql://nobody:secret@127.0.0.1:1/x", "migrate", "current"],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "secret" not in proc.stderr
