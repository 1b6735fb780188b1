"""Every mistake a user can make: one line on stderr, exit 3, no traceback, no password, nothing changed."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect

PASSWORD = "Sup3rSecretPw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert PASSWORD not in err + out


REFUSED = f"postgresql://nobody:{PASSWORD}@127.0.0.1:{_free_port()}/x"

STATIC_CASES = [
    ["--db", "", "migrate", "current"],
    ["--db", "localhost:5432/mita", "migrate", "current"],
    ["--db", f"mysql://root:{PASSWORD}@h/db", "migrate", "current"],
    ["--db", f"postgresql://u:{PASSWORD}@h:port/db", "migrate", "current"],
    ["--db", f"postgresql://u:{PASSWORD}@h:70000/db", "migrate", "current"],
    ["--db", f"postgresql://u:{PASSWORD}@h/db?sslmdoe=require", "migrate", "current"],
    ["--db", f"postgresql://u:{PASSWORD}@no-such-host.invalid/db", "migrate", "current"],
    ["--db", REFUSED, "migrate", "current"],
    ["--db", REFUSED, "migrate", "upgrade"],
    ["--db", REFUSED, "seed"],
    ["--db", REFUSED, "migrate", "upgrade", "no_such_revision"],
    ["no-such-command"],
    ["migrate", "sideways"],
    ["--db", REFUSED, "seed", "--users", "-5"],
    ["--db", REFUSED, "seed", "--days", "0"],
    ["--db", REFUSED, "seed", "--users", "many"],
    ["--db", REFUSED, "seed", "--truth", "t.json"],
    ["--db", REFUSED, "seed", "--corrupt", "--truth", "/no/such/folder/t.json"],
    ["--db", REFUSED, "migrate", "upgrade", "--backup", "/no/such/folder/b.dump"],
    ["--db", REFUSED, "migrate", "downgrade"],
    ["--db", REFUSED, "demo", "--users", "3"],
]


# REFUSED's port is chosen at import: out of the ids, so that every xdist worker collects the same tests.
@pytest.mark.parametrize("args", STATIC_CASES,
                         ids=[" ".join(a).replace(REFUSED, "REFUSED")[-60:] for a in STATIC_CASES])
def test_bad_input_without_a_database(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert_one_line_error(*run_cli(capsys, *args))


def test_the_issue_example_prints_one_line_and_hides_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--db", "postgresql://nobody:secret@127.0.0.1:1/x", "migrate", "current")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "secret" not in out + err


def test_password_from_database_url_env_is_masked(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", REFUSED)
    code, out, err = run_cli(capsys, "migrate", "current")
    note, error = err.splitlines()  # which database, and why; then the one-line error
    assert note.startswith("using postgresql://nobody:***@")
    assert note.endswith("from DATABASE_URL (--db URL overrides it)")
    assert_one_line_error(code, out, error)


def _url(db: Database) -> str:
    from mita_integrity.database.urls import build_url

    return build_url(db.parsed.params, mask_password=False)


def _tables(db: Database) -> list[str]:
    with connect(db) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_unknown_database_name(capsys: pytest.CaptureFixture[str], empty_db: Database) -> None:
    url = _url(empty_db.with_dbname("this_db_does_not_exist"))
    assert_one_line_error(*run_cli(capsys, "--db", url, "migrate", "current"))


def test_unknown_revision_in_alembic_version(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute("UPDATE integrity.alembic_version SET version_num = '0099_from_the_future'")
        conn.commit()
    code, out, err = run_cli(capsys, "--db", _url(baseline_db), "migrate", "current")
    assert_one_line_error(code, out, err)
    assert "0099_from_the_future" in err


def test_mita_tables_without_alembic_version_are_recognised(capsys: pytest.CaptureFixture[str],
                                                            baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute("DROP TABLE alembic_version")  # the application's, and the tool's own
        conn.execute("DROP TABLE integrity.alembic_version")
        conn.commit()
    before = _tables(baseline_db)
    code, out, err = run_cli(capsys, "--db", _url(baseline_db), "migrate", "current")
    assert code == 0 and "stamp 0021_add_habit_completions" in out
    code, out, err = run_cli(capsys, "--db", _url(baseline_db), "migrate", "upgrade")
    assert_one_line_error(code, out, err)
    assert "stamp" in err and _tables(baseline_db) == before
    code, out, err = run_cli(capsys, "--db", _url(baseline_db), "migrate", "stamp", "0021_add_habit_completions_table")
    assert code == 0, err
    code, out, err = run_cli(capsys, "--db", _url(baseline_db), "migrate", "current")
    assert out.strip().startswith("mita-integrity: 0021_add_habit_completions")


def test_seed_into_an_empty_unmigrated_database(capsys: pytest.CaptureFixture[str], empty_db: Database) -> None:
    assert_one_line_error(*run_cli(capsys, "--db", _url(empty_db), "seed", "--users", "5"))
    assert _tables(empty_db) == []


def test_downgrade_of_an_empty_database(capsys: pytest.CaptureFixture[str], empty_db: Database) -> None:
    assert_one_line_error(*run_cli(capsys, "--db", _url(empty_db), "migrate", "downgrade", "base"))


def test_read_only_role_cannot_migrate_and_nothing_changes(capsys: pytest.CaptureFixture[str],
                                                          empty_db: Database) -> None:
    from psycopg import sql

    with connect(empty_db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS mita_ro_cli")
        conn.execute(sql.SQL("CREATE ROLE mita_ro_cli LOGIN PASSWORD {}").format(sql.Literal(PASSWORD)))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    params = dict(empty_db.parsed.params, user="mita_ro_cli", password=PASSWORD)
    if params.get("host", "").startswith("/"):
        pytest.skip("needs a TCP server with password authentication")
    from mita_integrity.database.urls import build_url

    try:
        code, out, err = run_cli(capsys, "--db", build_url(params, mask_password=False), "migrate", "upgrade")
        assert_one_line_error(code, out, err)
        assert _tables(empty_db) == []
    finally:
        with connect(empty_db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY mita_ro_cli")
            conn.execute("DROP ROLE mita_ro_cli")


def test_unwritable_backup_changes_nothing(capsys: pytest.CaptureFixture[str], empty_db: Database,
                                           tmp_path: Path) -> None:
    target = tmp_path / "missing" / "b.dump"
    assert_one_line_error(*run_cli(capsys, "--db", _url(empty_db), "migrate", "upgrade", "--backup", str(target)))
    assert _tables(empty_db) == []
    with psycopg.connect(**empty_db.connect_kwargs()) as conn:
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)


def test_an_empty_database_url_is_an_error_not_the_embedded_server(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    """Issue 16, item 3: a CI secret that did not arrive must not check an empty local database."""
    monkeypatch.setenv("MITA_INTEGRITY_HOME", str(tmp_path / "home"))
    for empty in ("", "  "):
        monkeypatch.setenv("DATABASE_URL", empty)
        code, out, err = run_cli(capsys, "check")
        assert_one_line_error(code, out, err)
        assert "DATABASE_URL is set but empty" in err
    assert not (tmp_path / "home").exists()  # no embedded server was started


def test_database_url_says_which_database_and_why(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, baseline_db: Database) -> None:
    """Issue 16, item 3: a command on DATABASE_URL names it on stderr; stdout (JSON) stays clean."""
    import json

    from mita_integrity.database.urls import build_url

    monkeypatch.setenv("DATABASE_URL", build_url(baseline_db.parsed.params, mask_password=False))
    code, out, err = run_cli(capsys, "check", "--select", "REF005", "--format", "json")
    assert code == 0 and json.loads(out)["results"]
    assert err.splitlines() == [f"using {baseline_db.display} from DATABASE_URL (--db URL overrides it)"]


@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0, 3.0])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(delay: float, baseline_db: Database) -> None:
    """Issue 16, item 10: Ctrl-C while the modules load (the first second) or while a command runs."""
    import signal
    import subprocess
    import sys
    import time

    from mita_integrity.database.urls import build_url

    exe = Path(sys.executable).with_name("mita-integrity")
    url = build_url(baseline_db.parsed.params, mask_password=False)
    # A check that lasts: it waits on a lock the test holds, so a late Ctrl-C still finds it running.
    with connect(baseline_db) as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        for _ in range(3):
            proc = subprocess.Popen([str(exe), "--db", url, "check", "--lock-timeout", "60", "--statement-timeout",
                                     "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
            # On a loaded machine 0.2 s may still be Python's own start (its site import: "Fatal Python error"),
            # or the console script's first import before it has run the tool's guard (CI, stop 25: importlib
            # reading the module): the interpreter's, which no code of ours can answer. Then again, as a person
            # would press it a moment later.
            before_us = proc.returncode == -signal.SIGINT or "Fatal Python error: init_import_site" in err
            if not before_us or "mita_integrity" in err.rpartition("in <module>")[2]:
                break
        holder.rollback()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, (proc.returncode, err)
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert "Traceback" not in out + err
