"""Beside the application's own Alembic chain: exported into it, or standalone in the tool's own version table.

Each test builds a minimal application Alembic project in a temporary folder, shaped like MITA's: its own
alembic.ini, an env.py that runs every revision inside ONE `context.begin_transaction()` on a synchronous
SQLAlchemy engine (psycopg2, or psycopg 3), and revisions ending at `0021_add_habit_completions` that build
the reference schema (tests/data/mita_schema_pre0022.sql). The application's own `alembic` runs as a
subprocess, as in a deploy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url
from mita_integrity.migration import command as migrate
from mita_integrity.migration import export as migration_export
from tests.support import schema_snapshot as catalog

from .dbstate import checksums, cli_url, run_sql

REFERENCE_SQL = Path(__file__).resolve().parent / "data" / "mita_schema_pre0022.sql"
# Read from the chain, not written down: a later revision (0027, …) is exported and adopted the same way.
STEPS = [r.id for r in migrate.revisions() if r.id != migrate.BASELINE]
HEAD = STEPS[-1]

APP_INI = """[alembic]
script_location = %(here)s/migrations
path_separator = os
"""

# Shaped like MITA's env.py: the URL from the environment, a synchronous engine, ONE transaction for the run.
APP_ENV = '''import os

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"].replace("%", "%%"))


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                     poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
'''

APP_REVISION = '''"""{title}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op

revision = "{revision}"
down_revision = {down_literal}
branch_labels = None
depends_on = None

SQL = {sql!r}


def upgrade() -> None:
    op.get_bind().exec_driver_sql(SQL)


def downgrade() -> None:
    raise NotImplementedError("the application never goes below its baseline in these tests")
'''


def make_application(root: Path) -> Path:
    """Writes the application's Alembic project (0020 history, then 0021); gives its versions/ folder."""
    text = REFERENCE_SQL.read_text(encoding="utf-8")
    body = text[text.index("BEGIN;") + len("BEGIN;"): text.rindex("COMMIT;")]  # Alembic holds the transaction
    before, after = body.split("-- 0021\n", 1)
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(APP_INI, encoding="utf-8")
    (root / "migrations" / "env.py").write_text(APP_ENV, encoding="utf-8")
    for name, title, revision, down, sql in (
        ("0020_history.py", "The application's revisions 0001-0020, squashed", "0020_history", None, before),
        ("0021_add_habit_completions_table.py", "habit_completions (and the production-only columns)",
         "0021_add_habit_completions", "0020_history", after),
    ):
        (versions / name).write_text(APP_REVISION.format(
            title=title, revision=revision, down=down or "", down_literal=repr(down), sql=sql), encoding="utf-8")
    return versions


def app_url(db: Database, driver: str) -> str:
    plain = build_url(dict(db.parsed.params), mask_password=False)
    return plain.replace("postgresql://", f"postgresql+{driver}://", 1)


def app_alembic(root: Path, db: Database, driver: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the application's own `alembic` (its ini, its env.py) as a deploy would."""
    env = dict(os.environ, DATABASE_URL=app_url(db, driver))
    env.pop("MITA_INTEGRITY_HOME", None)
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"), *args],
                          capture_output=True, text=True, env=env, cwd=root, timeout=600)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def snapshot(db: Database) -> dict[str, Any]:
    with connect(db) as conn:
        return catalog.snapshot(conn)


def cli(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, str, str]:
    code = main(["--db", cli_url(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


def versions_of(db: Database) -> tuple[list[str], list[str]]:
    """Gives the rows of the application's alembic_version and of the tool's own version table."""
    app = [r[0] for r in run_sql(db, "SELECT version_num FROM public.alembic_version")]
    own = run_sql(db, "SELECT to_regclass('integrity.alembic_version')")[0][0]
    mine = [r[0] for r in run_sql(db, "SELECT version_num FROM integrity.alembic_version")] if own else []
    return app, mine


def add_orphan(db: Database) -> None:
    """A daily_plan row of nobody: 0022's clean-up archives and removes it, through the migration's driver."""
    run_sql(db, "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) "
                "VALUES ('00000000-0000-4000-8000-0000000000aa', gen_random_uuid(), date_trunc('day', now()), "
                "'food', 1, 0)")


def assert_orphan_archived(db: Database) -> None:
    assert run_sql(db, "SELECT count(*) FROM daily_plan WHERE id = '00000000-0000-4000-8000-0000000000aa'") == [(0,)]
    assert run_sql(db, "SELECT count(*) FROM integrity.archive WHERE table_name = 'daily_plan' "
                       "AND pk->>'id' = '00000000-0000-4000-8000-0000000000aa'") == [(1,)]


def verify_passes(capsys: pytest.CaptureFixture[str], db: Database) -> dict[str, Any]:
    code, out, err = cli(capsys, db, "check", "--record", "--format", "json", "--output", os.devnull)
    assert code in (0, 1), err
    code, out, err = cli(capsys, db, "verify", "--format", "json")
    lines = {line["name"]: line for line in json.loads(out)["lines"]}
    assert code == 0, {name: line["evidence"] for name, line in lines.items() if not line["passed"]}
    return lines


@pytest.fixture
def application(tmp_path: Path, empty_db: Database) -> tuple[Path, Path, Database, dict[str, Any]]:
    """Gives (project root, its versions/ folder, the database the application brought to 0021, its catalog)."""
    root = tmp_path / "mita-app"
    versions = make_application(root)
    ok(app_alembic(root, empty_db, "psycopg2", "upgrade", "head"))
    assert versions_of(empty_db) == (["0021_add_habit_completions"], [])
    return root, versions, empty_db, snapshot(empty_db)


def test_the_application_project_builds_the_reference_schema(application: tuple[Path, Path, Database, Any],
                                                             new_reference: Database) -> None:
    *_, reference = application
    assert catalog.diff(snapshot(new_reference), reference, ("reference", "application")) == []


@pytest.fixture
def new_reference(pg: Any) -> Any:
    import uuid

    name = f"mita_ref_{uuid.uuid4().hex[:10]}"
    db = pg.create_database(name)
    with connect(db, autocommit=True) as conn:
        conn.execute(REFERENCE_SQL.read_text(encoding="utf-8"))
    yield db
    pg.drop_database(name)


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_exported_chain_runs_in_the_applications_alembic(capsys: pytest.CaptureFixture[str], driver: str,
                                                         application: tuple[Path, Path, Database, Any]) -> None:
    root, versions, db, reference = application
    add_orphan(db)
    code, out, err = cli(capsys, db, "migrate", "export", str(versions))
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()[:-1]] == [
        str(versions / f"{name}.py") for name in STEPS]
    assert "(0021_add_habit_completions -> 0022_add_missing_fk_constraints)" in out

    up = app_alembic(root, db, driver, "upgrade", "head")
    ok(up)
    assert "0022: foreign keys of daily_plan" in up.stderr and "0026: a cascading foreign key" in up.stderr
    assert versions_of(db) == ([HEAD], [])
    assert_orphan_archived(db)
    assert f"{HEAD} (head)" in ok(app_alembic(root, db, driver, "current"))
    assert "0021_add_habit_completions -> 0022_add_missing_fk_constraints" in ok(app_alembic(root, db, driver,
                                                                                              "history"))
    ok(app_alembic(root, db, driver, "upgrade", "head"))  # the next deploy: nothing to do
    lines = verify_passes(capsys, db)
    assert lines["migrations-applied"]["evidence"] == f"alembic_version {HEAD}: every recorded migration's objects " \
                                                      "present"
    code, out, err = cli(capsys, db, "migrate", "current")
    assert code == 0 and f"application:    {HEAD}" in out and "exported into the application's chain" in out

    ok(app_alembic(root, db, driver, "downgrade", "0021_add_habit_completions"))
    assert versions_of(db) == (["0021_add_habit_completions"], [])
    assert catalog.diff(reference, snapshot(db), ("0021", "after the downgrade")) == []

    ok(app_alembic(root, db, driver, "upgrade", "head"))
    assert f"{HEAD} (head)" in ok(app_alembic(root, db, driver, "current"))
    verify_passes(capsys, db)


def test_standalone_chain_never_writes_the_applications_version(capsys: pytest.CaptureFixture[str],
                                                                application: tuple[Path, Path, Database, Any]) -> None:
    root, _versions, db, reference = application
    add_orphan(db)
    code, out, err = cli(capsys, db, "migrate", "current")
    assert code == 0 and "the application is at the baseline" in out
    code, out, err = cli(capsys, db, "migrate", "upgrade", "head")
    assert code == 0 and f"upgraded: 0021_add_habit_completions -> {HEAD}" in out, err
    assert versions_of(db) == (["0021_add_habit_completions"], [HEAD])
    assert_orphan_archived(db)

    ok(app_alembic(root, db, "psycopg2", "upgrade", "head"))  # the application's deploy still runs
    assert "0021_add_habit_completions (head)" in ok(app_alembic(root, db, "psycopg2", "current"))
    code, out, err = cli(capsys, db, "migrate", "current")
    assert out.splitlines() == [f"mita-integrity: {HEAD} (head)", "application:    0021_add_habit_completions"]
    verify_passes(capsys, db)

    code, out, err = cli(capsys, db, "migrate", "downgrade", "0021_add_habit_completions")
    assert code == 0, err
    assert versions_of(db) == (["0021_add_habit_completions"], ["0021_add_habit_completions"])
    assert catalog.diff(reference, snapshot(db), ("0021", "after the downgrade")) == []

    code, out, err = cli(capsys, db, "migrate", "upgrade")
    assert code == 0, err
    assert versions_of(db) == (["0021_add_habit_completions"], [HEAD])
    assert "0021_add_habit_completions (head)" in ok(app_alembic(root, db, "psycopg2", "current"))
    verify_passes(capsys, db)


def test_a_database_an_earlier_version_moved_is_moved_over_losing_nothing(
        capsys: pytest.CaptureFixture[str], application: tuple[Path, Path, Database, Any]) -> None:
    root, _versions, db, _reference = application
    assert cli(capsys, db, "migrate", "upgrade")[0] == 0
    # What mita-integrity before the standalone chain left: its own head in the application's table.
    run_sql(db, f"ALTER TABLE public.alembic_version ALTER COLUMN version_num TYPE varchar(64); "
                f"UPDATE public.alembic_version SET version_num = '{HEAD}'; DROP TABLE integrity.alembic_version")
    schema_before = snapshot(db)
    rows_before = {table: rows for table, rows in checksums(db).items() if table != "alembic_version"}
    broken = app_alembic(root, db, "psycopg2", "current")
    assert broken.returncode != 0  # the application's chain does not know it
    assert f"Can't locate revision identified by '{HEAD}'" in broken.stdout + broken.stderr

    code, out, err = cli(capsys, db, "migrate", "upgrade")
    assert code == 3 and len(err.strip().splitlines()) == 1 and "mita-integrity migrate adopt" in err
    code, out, err = cli(capsys, db, "migrate", "adopt")
    assert code == 0, err
    assert out.strip() == (f"moved: integrity.alembic_version {HEAD}; public.alembic_version {HEAD} -> "
                           "0021_add_habit_completions (no schema change)")
    assert versions_of(db) == (["0021_add_habit_completions"], [HEAD])
    assert snapshot(db) == schema_before
    assert {table: rows for table, rows in checksums(db).items() if table != "alembic_version"} == rows_before
    assert "0021_add_habit_completions (head)" in ok(app_alembic(root, db, "psycopg2", "current"))
    code, out, err = cli(capsys, db, "migrate", "upgrade")
    assert code == 0 and f"already at {HEAD}" in out
    code, out, err = cli(capsys, db, "migrate", "adopt")
    assert code == 0 and out.startswith("nothing to move")


def test_export_follows_the_chain_and_continues_an_earlier_export(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A revision someone adds to the chain (0027) is exported too, chained after the last exported file."""
    versions = tmp_path / "versions"
    versions.mkdir()
    first = migration_export.export(versions, "0021_add_habit_completions")
    assert [f.revision for f in first] == STEPS and all(f.written for f in first)
    assert [f.down_revision for f in first] == ["0021_add_habit_completions", *STEPS[:-1]]

    chain = tmp_path / "chain"
    source = Path(migrate.__file__).parents[1] / "migrations"
    chain.mkdir()
    for item in ("env.py", "script.py.mako"):
        (chain / item).write_text((source / item).read_text(encoding="utf-8"), encoding="utf-8")
    (chain / "versions").mkdir()
    for path in (source / "versions").glob("*.py"):
        (chain / "versions" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (chain / "versions" / "0027_later_step.py").write_text(
        f'"""A later step.\n\nRevision ID: 0027_later_step\nRevises: {HEAD}\n"""\n'
        f'revision = "0027_later_step"\ndown_revision = "{HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n", encoding="utf-8")
    config = migrate.alembic_config()
    config.set_main_option("script_location", str(chain))
    monkeypatch.setattr(migrate, "alembic_config", lambda: config)

    again = migration_export.export(versions, "ignored: an earlier export is continued")
    assert [(f.revision, f.written) for f in again] == [*((s, False) for s in STEPS), ("0027_later_step", True)]
    assert again[-1].down_revision == HEAD
    text = (versions / "0027_later_step.py").read_text(encoding="utf-8")
    assert f'down_revision: str | None = "{HEAD}"' in text and "migration_api.require(1)" in text
    assert all(f.path.read_text(encoding="utf-8") == g.path.read_text(encoding="utf-8")
               for f, g in zip(first, again[:-1], strict=True))


def test_export_refuses_what_it_cannot_chain(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             empty_db: Database) -> None:
    code, out, err = cli(capsys, empty_db, "migrate", "export", str(tmp_path))
    assert code == 3 and len(err.strip().splitlines()) == 1 and "--down-revision" in err
    code, out, err = cli(capsys, empty_db, "migrate", "export", str(tmp_path / "missing"), "--down-revision", "x")
    assert code == 3 and "is not a directory" in err
    code, out, err = cli(capsys, empty_db, "migrate", "export", str(tmp_path), "--down-revision", STEPS[1])
    assert code == 3 and "mita-integrity's own chain" in err
    assert list(tmp_path.iterdir()) == []
