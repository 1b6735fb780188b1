"""A real PostgreSQL for every test: one server per session, migrated templates, a fresh clone per test.

The server is, in order: MITA_TEST_DATABASE_URL (any server where we may CREATE DATABASE); a throw-away
cluster from MITA_TEST_PG_BINDIR (CI points it at Debian's PostgreSQL 15); a throw-away cluster from the
embedded PostgreSQL 16 of the pgserver wheel. With MITA_TEST_REQUIRE_DB=1 (CI) a missing server fails
the run instead of skipping the database tests.

Under pytest-xdist (`pytest -n 2`, as CI runs) every worker is its own process with its own session: its own
throw-away cluster and its own templates, so no test shares a server with a test running at the same time
(several tests create roles with fixed names or stream a standby from the server, and the
checkpoint each CREATE DATABASE … STRATEGY FILE_COPY forces would also write out the other worker's pages).
The controller decides whether any database test passed, from the reports the workers send it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from mita_integrity.database import embedded
from mita_integrity.database.connection import Database
from mita_integrity.migration import command as migrate
from tests.support.pgcluster import Cluster, start_cluster

REFERENCE_SQL = Path(__file__).resolve().parents[1] / "tests" / "data" / "mita_schema_pre0022.sql"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


class PgServer:
    """The session's server: its admin URL, and a way to make and drop databases on it."""

    def __init__(self, admin_url: str, cluster: Cluster | None) -> None:
        self.admin = Database.from_url(admin_url, origin="test")
        self.cluster = cluster
        with psycopg.connect(admin_url, autocommit=True) as conn:
            self.version_num = conn.info.server_version
        self.major = self.version_num // 10000

    def database(self, name: str) -> Database:
        return self.admin.with_dbname(name)

    def execute(self, statement: sql.Composable | str, *, dbname: str = "postgres") -> None:
        with psycopg.connect(autocommit=True, **self.database(dbname).connect_kwargs()) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, name: str, template: str | None = None) -> Database:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            # FILE_COPY copies the template's files at once; WAL_LOG (15's default) is slower for small clones.
            strategy = sql.SQL(" STRATEGY FILE_COPY") if self.major >= 15 else sql.SQL("")
            stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(name), sql.Identifier(template), strategy)
        self.execute(stmt)
        return self.database(name)

    def drop_database(self, name: str) -> None:
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _start_server() -> PgServer:
    url = os.environ.get("MITA_TEST_DATABASE_URL")
    if url:
        return PgServer(url, None)
    bindir = Path(os.environ.get("MITA_TEST_PG_BINDIR") or embedded.bin_dir())
    # Workers start their clusters at the same moment: a port handed out twice, or the server's system user
    # created by both at once, fails one start; the next attempt gets another port and finds the user.
    for attempt in range(3):
        try:
            cluster = start_cluster(bindir)
            break
        except Exception:
            if attempt == 2:
                raise
    return PgServer(cluster.url, cluster)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    try:
        server = _start_server()
    except Exception as exc:  # noqa: BLE001 - any failure means: no database for this run
        message = f"no PostgreSQL for the tests: {exc}"
        if os.environ.get("MITA_TEST_REQUIRE_DB") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield server
    if server.cluster is not None:
        server.cluster.destroy()


_TEMPLATES: dict[str, str] = {}


def application_at_baseline(db: Database) -> None:
    """Gives the database the application's own alembic_version at 0021, as every production database has it.

    mita-integrity's chain keeps its state in integrity.alembic_version and never writes this table; the
    application's chain (0001 … 0021) did.
    """
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.alembic_version (version_num varchar(32) NOT NULL, "
                     "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
        conn.execute("INSERT INTO public.alembic_version SELECT %s WHERE NOT EXISTS "
                     "(SELECT 1 FROM public.alembic_version)", (migrate.BASELINE,))


def template_at(pg: PgServer, revision: str) -> str:
    """Gives the name of a template database migrated to revision (made once per session)."""
    if revision not in _TEMPLATES:
        name = f"mita_tpl_{revision.replace('-', '_')[:30]}_{uuid.uuid4().hex[:6]}"
        db = pg.create_database(name)
        migrate.upgrade(db, revision)
        application_at_baseline(db)
        _TEMPLATES[revision] = name
    return _TEMPLATES[revision]


def _fresh_name() -> str:
    return f"mita_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def empty_db(pg: PgServer) -> Iterator[Database]:
    """A new, empty database."""
    name = _fresh_name()
    db = pg.create_database(name)
    yield db
    pg.drop_database(name)


@pytest.fixture
def baseline_db(pg: PgServer) -> Iterator[Database]:
    """A new database cloned from the template migrated to the baseline (0021)."""
    name = _fresh_name()
    db = pg.create_database(name, template=template_at(pg, migrate.BASELINE))
    yield db
    pg.drop_database(name)


@pytest.fixture
def db_url(baseline_db: Database) -> str:
    """The full (unmasked) URL of baseline_db, for the CLI."""
    from mita_integrity.database.urls import build_url

    return build_url(baseline_db.parsed.params, mask_password=False)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


_DB_TESTS_PASSED = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counts passed tests that used the database, so a run that skipped them all can fail.

    Under xdist the controller runs this hook for every report a worker sends (user_properties travel with
    it), so the controller's count is the whole run's.
    """
    global _DB_TESTS_PASSED
    if report.when == "call" and report.passed and dict(report.user_properties).get("uses_db"):
        _DB_TESTS_PASSED += 1


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    item.user_properties.append(("uses_db", "pg" in getattr(item, "fixturenames", ())))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With MITA_TEST_REQUIRE_DB=1, a run in which no database test passed is a failure.

    An xdist worker does not decide: it ran only its share (possibly none of the database tests), and its
    exit status is not the run's. The controller (or a run without xdist) does.
    """
    if hasattr(session.config, "workerinput"):
        return
    if os.environ.get("MITA_TEST_REQUIRE_DB") == "1" and session.testscollected and _DB_TESTS_PASSED == 0:
        session.exitstatus = 1
        print("\nno test against PostgreSQL passed: failing the run (MITA_TEST_REQUIRE_DB=1)")
