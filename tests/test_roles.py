"""Least privilege (docs/roles.sql): each command under the reader and the writer role, through the CLI.

What a role may do works; what it may not is refused in one line (exit 3), before anything changes.
Roles are cluster-wide: every test runs docs/roles.sql with group and login roles of its own names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.runs import integrity_schema
from mita_integrity.seed import SeedOptions, seed_database

from .conftest import PgServer
from .dbstate import archived, assert_nothing_lost, checksums, cli_url, row_counts, run_sql

ROLES_SQL = Path(__file__).resolve().parents[1] / "docs" / "roles.sql"
PASSWORD = "R0le-Secret-pw"


def psql_binary(pg: PgServer) -> str:
    """Gives a psql: the session cluster's own, else one on PATH."""
    if pg.cluster is not None and (pg.cluster.bindir / "psql").exists():
        return str(pg.cluster.bindir / "psql")
    found = shutil.which("psql")
    if not found:
        pytest.skip("no psql to run docs/roles.sql with")
    return found


def run_psql(pg: PgServer, db: Database, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": db.parsed.password or "", "PGOPTIONS": "-c client_min_messages=warning"}
    return subprocess.run([psql_binary(pg), "-X", "-q", "-v", "ON_ERROR_STOP=1", cli_url(db), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False)


@dataclass(frozen=True)
class Roles:
    """The group roles docs/roles.sql made, and a login role in each."""

    reader: str
    writer: str
    reader_url: str
    writer_url: str


def login_url(db: Database, user: str) -> str:
    if db.parsed.params.get("host", "").startswith("/"):  # a socket may trust everyone: become the role instead
        return cli_url(db, options=f"-c role={user}")
    return cli_url(Database(db.parsed.__class__(params={**db.parsed.params, "user": user, "password": PASSWORD},
                                                 dropped=db.parsed.dropped), db.origin))


def make_roles(pg: PgServer, db: Database) -> Roles:
    """Runs docs/roles.sql as the owner (twice: it is idempotent) and adds one login role to each group."""
    tag = uuid.uuid4().hex[:8]
    reader, writer = f"mita_integrity_reader_{tag}", f"mita_integrity_writer_{tag}"
    for _ in range(2):
        proc = run_psql(pg, db, "-v", f"reader={reader}", "-v", f"writer={writer}", "-f", str(ROLES_SQL))
        assert proc.returncode == 0, proc.stderr
    for group, login in ((reader, f"rl_{tag}"), (writer, f"wl_{tag}")):
        run_sql(db, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(login), sql.Literal(PASSWORD), sql.Identifier(group)).as_string())
    # PUBLIC may create in public before PostgreSQL 15; production hardens it, so do we.
    run_sql(db, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return Roles(reader, writer, login_url(db, f"rl_{tag}"), login_url(db, f"wl_{tag}"))


def drop_roles(db: Database, roles: Roles) -> None:
    tag = roles.reader.rsplit("_", 1)[1]
    for role in (f"rl_{tag}", f"wl_{tag}", roles.writer, roles.reader):
        run_sql(db, f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


@pytest.fixture
def seeded(pg: PgServer, baseline_db: Database) -> Iterator[tuple[Database, Roles]]:
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=30, days=10, seed=5, corrupt=True))
    roles = make_roles(pg, baseline_db)
    yield baseline_db, roles
    drop_roles(baseline_db, roles)


def cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--db", url, *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and PASSWORD not in out + err
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], db: Database, url: str, *args: str) -> str:
    """Runs a command that must be refused: one `error:` line, exit 3, the database exactly as before."""
    before, schema_before = checksums(db), integrity_tables(db)
    code, out, err = cli(capsys, url, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and len(lines) == 1 and lines[0].startswith("error: "), (args, code, out, err)
    assert checksums(db) == before and integrity_tables(db) == schema_before, args
    return lines[0]


def integrity_tables(db: Database) -> dict[str, int]:
    """Gives the integrity tables and their row counts (empty when the schema is absent)."""
    with connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace('integrity') "
                    "AND relkind = 'r' ORDER BY 1")
        names = [r[0] for r in cur.fetchall()]
        counts = {}
        for name in names:
            cur.execute(sql.SQL("SELECT count(*) FROM integrity.{}").format(sql.Identifier(name)))
            counts[name] = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute("SELECT to_regnamespace('integrity') IS NOT NULL")
        if cur.fetchone()[0]:  # type: ignore[index]
            counts["(schema)"] = 1
    return counts


def test_roles_sql_creates_the_integrity_schema_as_store_does() -> None:
    """docs/roles.sql carries integrity_schema.script() verbatim and in order (comments aside): the version table,
    every upgrade step and the row recording it — so the two cannot drift apart, and a database set up by the
    owner with it is at the version the tool writes (it then executes nothing)."""
    def norm(text: str) -> str:
        return " ".join(re.sub(r"--[^\n]*", "", text).split())

    script = norm(ROLES_SQL.read_text())
    assert " ".join(norm(statement) + ";" for statement in integrity_schema.script()) in script, \
        "section 5 of docs/roles.sql differs: paste `python -m mita_integrity.runs.integrity_schema` there"


def test_the_reader_checks_plans_and_lists_but_writes_nothing(capsys: pytest.CaptureFixture[str],
                                                              seeded: tuple[Database, Roles]) -> None:
    db, roles = seeded
    url = roles.reader_url
    before = checksums(db)
    code, out, err = cli(capsys, url, "check", "--format", "json")
    assert code == 2 and json.loads(out)["summary"]["rules_run"] > 50, err
    assert cli(capsys, url, "rules", "REF001")[0] == 0
    code, out, err = cli(capsys, url, "fix", "--format", "json")
    assert code == 0 and json.loads(out)["rows_to_change"] > 0, err
    code, out, err = cli(capsys, url, "runs")
    assert code == 0 and "No runs recorded yet" in out, err
    code, out, err = cli(capsys, url, "verify", "--format", "json")
    lines = {line["name"]: line for line in json.loads(out)["lines"]}
    assert code == 1 and err == "" and "lacks INSERT" in lines["cascade-probe"]["evidence"]
    assert lines["fk-0022"]["evidence"] and not lines["recent-check"]["passed"]
    assert checksums(db) == before

    assert "lacks" in refused(capsys, db, url, "check", "--record")
    line = refused(capsys, db, url, "fix", "--apply")
    assert "lacks DELETE" in line and "nothing was changed" in line

    # A run the owner made: the reader lists it, shows it, and may not undo it.
    owner = cli_url(db)
    assert cli(capsys, owner, "fix", "--apply", "--select", "REF003")[0] == 0
    (run,) = json.loads(cli(capsys, url, "runs", "--format", "json")[1])
    assert cli(capsys, url, "runs", "--show", run["id"])[0] == 0
    assert "lacks" in refused(capsys, db, url, "undo", run["id"])


def test_the_writer_repairs_records_and_undoes(capsys: pytest.CaptureFixture[str],
                                               seeded: tuple[Database, Roles]) -> None:
    db, roles = seeded
    url = roles.writer_url
    before = row_counts(db)
    code, out, err = cli(capsys, url, "check", "--record", "--format", "json")
    assert code == 2 and "recorded in integrity.runs" in err
    assert cli(capsys, url, "fix")[0] == 0
    code, out, err = cli(capsys, url, "fix", "--apply", "--format", "json")
    assert code == 0, err  # every safe repair leaves its rule passing
    fixed = json.loads(out)
    assert fixed["changed"] > 0 and fixed["archived"] >= fixed["changed"]
    assert_nothing_lost(before, row_counts(db), archived(db, fixed["run_id"]))
    code, out, err = cli(capsys, url, "verify")
    assert code == 1 and err == "" and "cannot probe" not in out, out
    code, out, err = cli(capsys, url, "runs", "--format", "json")
    assert code == 0 and [r["kind"] for r in json.loads(out)] == ["fix", "check"]
    code, out, err = cli(capsys, url, "undo", fixed["run_id"][:8], "--apply")
    assert code == 0 and "restored" in out, err
    assert row_counts(db) == before
    line = refused(capsys, db, url, "undo", fixed["run_id"])
    assert "nothing left to restore" in line


@pytest.mark.parametrize("role", ["reader", "writer"])
def test_migrations_stay_with_the_owner(capsys: pytest.CaptureFixture[str], seeded: tuple[Database, Roles],
                                        role: str) -> None:
    db, roles = seeded
    line = refused(capsys, db, roles.reader_url if role == "reader" else roles.writer_url, "migrate", "upgrade", "head")
    assert "owner" in line


def test_without_the_integrity_schema_no_role_creates_it(capsys: pytest.CaptureFixture[str],
                                                         seeded: tuple[Database, Roles]) -> None:
    """The owner creates the integrity schema (roles.sql): a writer that finds it absent is refused up front."""
    db, roles = seeded
    run_sql(db, "DROP SCHEMA integrity CASCADE")
    for url in (roles.reader_url, roles.writer_url):
        for args in (("check", "--record"), ("fix", "--apply", "--select", "REF")):
            line = refused(capsys, db, url, *args)
            assert "CREATE on the database (for the integrity schema)" in line, line
        assert integrity_tables(db) == {}
        assert cli(capsys, url, "runs")[0] == 0
        assert "no run history" in refused(capsys, db, url, "undo", "12345678")


WEIRD_TABLE = 'x"; DROP TABLE users;--'
WEIRD_COLUMN = 'c"; DROP TABLE users;--'


def test_identifiers_from_the_catalog_are_quoted(capsys: pytest.CaptureFixture[str], pg: PgServer,
                                                 baseline_db: Database) -> None:
    """A table and a column named like an injection are checked, verified and planned; users survives."""
    db, url = baseline_db, cli_url(baseline_db)
    with connect(db) as conn:
        seed_database(conn, SeedOptions(users=10, days=5, seed=3, corrupt=True))
        table, column = sql.Identifier(WEIRD_TABLE), sql.Identifier(WEIRD_COLUMN)
        conn.execute(sql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY, user_id uuid, deleted_at timestamptz, {} text, "
                             "created_at timestamptz DEFAULT now())").format(table, column))
        conn.execute(sql.SQL("INSERT INTO {} (id, user_id, deleted_at) VALUES (gen_random_uuid(), gen_random_uuid(), "
                             "now()), (gen_random_uuid(), NULL, NULL)").format(table))
        conn.commit()

    code, out, err = cli(capsys, url, "check", "--select", "SCH,REF011", "--format", "json")
    results = [r for r in json.loads(out)["results"] if r["table"] == WEIRD_TABLE]
    assert code == 1 and [(r["code"], r["status"], r["count"]) for r in results] == [("SCH001", "fail", 1)]
    code, out, err = cli(capsys, url, "verify", "--format", "json")
    assert code == 1 and err == "" and "could not" not in out and "cannot probe" not in out, out
    assert "(0 of" not in json.loads(out)["lines"][-3]["evidence"]  # the weird table's orphan is counted
    code, out, err = cli(capsys, url, "fix", "--select", "SCH001", "--format", "json")
    plan = [i for i in json.loads(out)["items"] if i["table"] == WEIRD_TABLE]
    assert code == 0 and [i["code"] for i in plan] == ["SCH001"], plan

    code, script, err = cli(capsys, url, "sql")
    assert code == 0
    proc = run_psql(pg, db, stdin=script)
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr[-2000:]
    assert WEIRD_TABLE in proc.stdout
    assert run_sql(db, "SELECT to_regclass('public.users') IS NOT NULL, count(*) FROM users") [0][0]


def test_row_rules_and_repairs_on_a_weirdly_named_table(capsys: pytest.CaptureFixture[str],
                                                        baseline_db: Database) -> None:
    db, url = baseline_db, cli_url(baseline_db)
    with connect(db) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY, user_id uuid, deleted_at timestamptz)").format(
            sql.Identifier(WEIRD_TABLE)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (gen_random_uuid(), gen_random_uuid(), now())").format(
            sql.Identifier(WEIRD_TABLE)))
        conn.commit()
    code, out, err = cli(capsys, url, "check", "--select", "REF010,SDL001", "--format", "json")
    results = {r["code"]: (r["status"], r["count"]) for r in json.loads(out)["results"] if r["table"] == WEIRD_TABLE}
    assert results == {"REF010": ("fail", 1), "SDL001": ("fail", 1)}, results
    code, out, err = cli(capsys, url, "fix", "--apply", "--select", "REF010", "--format", "json")
    assert code == 0 and json.loads(out)["changed"] == 1, err
    assert cli(capsys, url, "undo", json.loads(out)["run_id"], "--apply")[0] == 0
    assert run_sql(db, "SELECT count(*) FROM users")
