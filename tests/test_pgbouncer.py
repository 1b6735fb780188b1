"""Behind PgBouncer in transaction pooling mode, as production runs behind Supabase's pooler (issue 7 item 1).

Every command goes through a pool of two server connections while other clients hammer the same pool, with
a dotted user name and `?prepared_statement_cache_size=0&pgbouncer=true`: check, fix --apply and undo,
verify and schedule --once work and agree with a direct connection; migrate current/history/validate work;
a migration with a step that needs a session is refused in one line, exit 3, with nothing changed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from importlib import resources

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, Pooling, detect_pooling
from mita_integrity.database.errors import UsageError
from mita_integrity.migration import command as migrate
from mita_integrity.schedule.runner import LOCK_KEY

from .conftest import PgServer, template_at
from .dbstate import archived, assert_nothing_lost, checksums, cli_url, row_counts, run_sql
from .pgbouncer import USER, PgBouncer, drop_pooler_role, hammering, start

HEAD = "0027_harden_spent_trigger"


@pytest.fixture(scope="session")
def pgbouncer(pg: PgServer) -> Iterator[PgBouncer]:
    bouncer = start(pg.admin, pg.cluster.os_user if pg.cluster else None)
    yield bouncer
    bouncer.stop()
    drop_pooler_role(pg.admin)


@pytest.fixture(autouse=True)
def _no_declared_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MITA_POOL_MODE", raising=False)
    for name in ("DATABASE_URL", "MITA_SLACK_WEBHOOK_URL", "MITA_SMTP_URL", "SENTRY_DSN", "MITA_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def seeded(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> Database:
    assert main(["--db", cli_url(baseline_db), "seed", "--users", "40", "--days", "20", "--corrupt"]) == 0
    capsys.readouterr()
    return baseline_db


def _cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--db", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def _pooled(bouncer: PgBouncer, db: Database, *, marked: bool = True) -> str:
    """Gives db's URL through the pooler, with pgbouncer=true, or (marked=False) without it."""
    return bouncer.url(db.dbname) if marked else bouncer.url(db.dbname, pgbouncer=None)


def _catalog(db: Database) -> list[tuple[object, ...]]:
    """Gives every relation, index validity and constraint of the public and integrity schemas, and the revision."""
    return run_sql(db, """
        SELECT n.nspname, c.relname, c.relkind::text, coalesce(x.indisvalid, true)::text FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index x ON x.indexrelid = c.oid
         WHERE n.nspname IN ('public', 'integrity')
        UNION ALL
        SELECT n.nspname, con.conname, con.contype::text, con.convalidated::text FROM pg_constraint con
          JOIN pg_namespace n ON n.oid = con.connamespace WHERE n.nspname IN ('public', 'integrity')
        UNION ALL
        SELECT 'alembic_version', version_num, '', '' FROM alembic_version
        UNION ALL
        SELECT 'integrity.alembic_version', version_num, '', '' FROM integrity.alembic_version
        ORDER BY 1, 2, 3""")


def test_the_pooler_url_parses_and_declares_transaction_pooling(monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database.from_url(f"postgresql+asyncpg://{USER}:p%40ss@aws-0-eu-central-1.pooler.supabase.com:6543/"
                           "postgres?prepared_statement_cache_size=0&pgbouncer=true")
    assert db.parsed.params["user"] == USER and db.parsed.password == "p@ss"
    assert db.parsed.dropped == ("prepared_statement_cache_size", "pgbouncer")
    assert db.parsed.pgbouncer and db.with_dbname("mita").parsed.pgbouncer
    assert detect_pooling(db).reason == "the URL says pgbouncer=true"
    supabase = Database.from_url(f"postgresql://{USER}:x@aws-0-eu-central-1.pooler.supabase.com:6543/postgres")
    assert not supabase.parsed.pgbouncer
    assert detect_pooling(supabase).reason == "port 6543 is Supabase's transaction pooler"
    assert not Database.from_url("postgresql://u@h:6432/d?pgbouncer=false").parsed.pgbouncer
    monkeypatch.setenv("MITA_POOL_MODE", "session")
    assert not detect_pooling(db).transaction  # declared: nothing is asked of the server
    monkeypatch.setenv("MITA_POOL_MODE", "bogus")
    with pytest.raises(UsageError, match="MITA_POOL_MODE='bogus' is not a pool mode"):
        detect_pooling(db)


def test_detection_sees_a_pooler_the_url_does_not_mention(pgbouncer: PgBouncer, baseline_db: Database,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Database.from_url(_pooled(pgbouncer, baseline_db, marked=False))
    assert not plain.parsed.pgbouncer
    found = detect_pooling(plain)
    assert found.transaction and "a pooler answers there" in found.reason
    assert detect_pooling(baseline_db) == Pooling(False, "a direct connection")
    monkeypatch.setenv("MITA_POOL_MODE", "session")
    assert not detect_pooling(plain).transaction


def test_check_through_the_pooler_matches_a_direct_run(capsys: pytest.CaptureFixture[str], pgbouncer: PgBouncer,
                                                       seeded: Database) -> None:
    direct_code, out, err = _cli(capsys, cli_url(seeded), "check", "--format", "json")
    direct = json.loads(out)
    with hammering(_pooled(pgbouncer, seeded)) as hammer:
        pids = len(hammer.pids)
        code, out, err = _cli(capsys, _pooled(pgbouncer, seeded), "check", "--format", "json")
    assert code == direct_code == 2, err  # --corrupt injects critical defects
    pooled = json.loads(out)

    def findings(report: dict[str, object]) -> list[tuple[object, ...]]:
        return [(r["code"], r["table"], r["status"], r["count"]) for r in report["results"]]  # type: ignore[attr-defined]

    assert findings(pooled) == findings(direct)
    assert sum(1 for r in pooled["results"] if r["status"] == "fail") > 10
    assert pooled["database"]["user"] == USER
    assert pids >= 2  # the other clients had used both server connections: the check's landed on shared ones


def test_fix_apply_and_undo_through_the_pooler(capsys: pytest.CaptureFixture[str], pgbouncer: PgBouncer,
                                               seeded: Database) -> None:
    before = checksums(seeded)
    url = _pooled(pgbouncer, seeded)
    with hammering(url):
        code, out, err = _cli(capsys, url, "fix", "--apply", "--batch-size", "3", "--format", "json")
        assert code == 0, err
        result = json.loads(out)
        assert result["status"] == "completed" and result["changed"] > 10
        assert_nothing_lost({t: n for t, (n, _) in before.items()}, row_counts(seeded),
                            archived(seeded, result["run_id"]))
        assert sum(archived(seeded, result["run_id"]).values()) == result["archived"]
        code, out, err = _cli(capsys, url, "undo", result["run_id"][:8], "--apply")
    assert code == 0, err
    assert f"{result['archived']} of {result['archived']} archived rows" in out
    assert checksums(seeded) == before


def test_migrate_through_the_pooler_reads_and_refuses_a_session_step(capsys: pytest.CaptureFixture[str],
                                                                     pgbouncer: PgBouncer,
                                                                     baseline_db: Database) -> None:
    url = _pooled(pgbouncer, baseline_db)
    before, data = _catalog(baseline_db), checksums(baseline_db)
    with hammering(url):
        assert _cli(capsys, url, "migrate", "current")[:2] == (
            0, f"mita-integrity: {migrate.BASELINE}\napplication:    {migrate.BASELINE}\n")
        code, out, err = _cli(capsys, url, "migrate", "history")
        assert code == 0 and "(head)" in out
        assert _cli(capsys, url, "migrate", "validate")[0] == 0  # nothing NOT VALID at the baseline
        for argv, reason in ((url, "the URL says pgbouncer=true"),
                             (_pooled(pgbouncer, baseline_db, marked=False),
                              "a pooler answers there")):
            code, out, err = _cli(capsys, argv, "migrate", "upgrade", "head")
            assert code == 3 and out == ""
            assert len(err.strip().splitlines()) == 1, err
            assert err.startswith("error: migrate upgrade head needs a direct or session-mode connection: "
                                  "0022_add_missing_fk_constraints runs CREATE/DROP INDEX CONCURRENTLY"), err
            assert reason in err and "nothing was changed" in err and "MITA_POOL_MODE=session" in err
        code, out, err = _cli(capsys, url, "migrate", "upgrade", migrate.BASELINE)  # nothing to run: allowed
        assert code == 0 and "already at" in out
    assert _catalog(baseline_db) == before and checksums(baseline_db) == data


def test_migrations_without_a_session_step_run_through_the_pooler(capsys: pytest.CaptureFixture[str], pg: PgServer,
                                                                  pgbouncer: PgBouncer) -> None:
    name = f"mita_t_pooled_{uuid.uuid4().hex[:10]}"
    db = pg.create_database(name, template=template_at(pg, "0023_add_unique_constraint_daily_plan"))
    try:
        url = _pooled(pgbouncer, db)
        with hammering(url):
            code, out, err = _cli(capsys, url, "migrate", "upgrade", "0025_add_daily_plan_spent_trigger")
            assert code == 0 and "-> 0025_add_daily_plan_spent_trigger" in out, err
            before = _catalog(db)
            code, out, err = _cli(capsys, url, "migrate", "upgrade")
            assert code == 3 and "0026_complete_user_foreign_keys runs CREATE/DROP INDEX CONCURRENTLY" in err, err
            assert _catalog(db) == before
            code, out, err = _cli(capsys, url, "migrate", "downgrade", "-1", "--backup", "/tmp/never.dump")
            assert code == 3 and "--backup runs pg_dump" in err, err
            code, out, err = _cli(capsys, url, "migrate", "downgrade", "-1")
            assert code == 0 and "downgraded: 0025_add_daily_plan_spent_trigger -> 0024" in out, err
            before = _catalog(db)
            code, out, err = _cli(capsys, url, "migrate", "downgrade", "0022_add_missing_fk_constraints")
            assert code == 3 and "0023_add_unique_constraint_daily_plan runs" in err, err
            assert _catalog(db) == before
    finally:
        pg.drop_database(name)


def test_needs_session_names_every_migration_that_builds_or_drops_an_index_concurrently() -> None:
    concurrent = re.compile(r"\.(ensure_index|ensure_fk_index|drop_index|outside)\(")
    versions = resources.files("mita_integrity.migrations").joinpath("versions")
    found = set()
    for revision in migrate.revisions():
        source = versions.joinpath(f"{revision.file_name}.py").read_text(encoding="utf-8")
        if concurrent.search(source):
            found.add(revision.id)
    assert found == set(migrate.NEEDS_SESSION)


def test_verify_through_the_pooler_matches_a_direct_run(capsys: pytest.CaptureFixture[str], pgbouncer: PgBouncer,
                                                        seeded: Database) -> None:
    direct_code, direct, _ = _cli(capsys, cli_url(seeded), "verify")
    with hammering(_pooled(pgbouncer, seeded)):
        code, out, err = _cli(capsys, _pooled(pgbouncer, seeded), "verify")
    assert code == direct_code == 1, err

    def verdicts(text: str) -> list[str]:
        return [" ".join(line.split()[:2]) for line in text.splitlines() if line.startswith(("PASS", "FAIL"))]

    assert verdicts(out) == verdicts(direct) and len(verdicts(out)) == 11


def test_schedule_once_through_the_pooler_holds_its_lock_in_a_transaction(
        capsys: pytest.CaptureFixture[str], pgbouncer: PgBouncer, seeded: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A session lock through a transaction pooler is taken on one server connection and released (or not)
    on another: the lock must live in a transaction, which the pooler keeps on one server connection."""
    from mita_integrity.schedule import runner as schedule

    holders = (f"SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = "
               f"'advisory' AND l.classid = {LOCK_KEY >> 32} AND l.objid = {LOCK_KEY & 0xFFFFFFFF}")
    seen: list[list[tuple[object, ...]]] = []
    check = schedule.run_check

    def run_check_seeing_the_lock(*args: object, **kwargs: object) -> object:
        seen.append(run_sql(seeded, holders))
        return check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schedule, "run_check", run_check_seeing_the_lock)
    url = _pooled(pgbouncer, seeded)
    with hammering(url):
        for _ in range(3):
            code, out, err = _cli(capsys, url, "schedule", "--once", "--fail-on", "never")
            assert code == 0, err
            assert "check run" in out + err and "skipped" not in out + err
            assert run_sql(seeded, holders) == []
    assert seen == [[("idle in transaction",)]] * 3
    assert run_sql(seeded, "SELECT count(*) FROM integrity.runs WHERE kind = 'check'") == [(3,)]
