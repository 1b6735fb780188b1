"""The `integrity` schema is versioned (integrity_schema.py): on a database with the tables of earlier releases
and their rows, the first write upgrades in place and loses nothing; concurrent first writers upgrade once; a
step added later is applied once; a reader (and a writer) meeting a newer schema says so in one line."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.errors import DatabaseStateError
from mita_integrity.runs import integrity_schema, store
from mita_integrity.runs.integrity_schema import Step

from .dbstate import cli_url
from .dbstate import run_sql as _sql

# The integrity tables as mita-integrity created them before the schema was versioned: store.DDL of
# commit b27552b, copied verbatim (the f-strings rendered), executed one statement at a time as store.ensure did.
OLD_DDL = (
    "CREATE SCHEMA IF NOT EXISTS integrity",
    """CREATE TABLE IF NOT EXISTS integrity.runs (
        id uuid PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('check', 'fix', 'undo')),
        status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        db_user text NOT NULL DEFAULT current_user,
        backend_pid integer DEFAULT pg_backend_pid(),
        tool_version text,
        options jsonb NOT NULL DEFAULT '{}',
        summary jsonb NOT NULL DEFAULT '{}',
        report jsonb,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())  -- the database's clock, for schedulers""",
    "CREATE INDEX IF NOT EXISTS runs_started_at_idx ON integrity.runs (started_at)",
    """CREATE TABLE IF NOT EXISTS integrity.archive (
        id bigserial PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES integrity.runs (id),
        rule_code text NOT NULL,
        table_name text NOT NULL,
        action text NOT NULL CHECK (action IN ('delete', 'update', 'insert')),
        pk jsonb NOT NULL,
        before jsonb,
        after jsonb,
        archived_at timestamptz NOT NULL DEFAULT now(),
        restored_by uuid REFERENCES integrity.runs (id),
        restored_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS archive_run_id_idx ON integrity.archive (run_id, id)",
    """CREATE TABLE IF NOT EXISTS integrity.run_results (
        run_id uuid NOT NULL REFERENCES integrity.runs (id) ON DELETE CASCADE,
        fingerprint text NOT NULL,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        status text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (run_id, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS integrity.findings (
        fingerprint text PRIMARY KEY,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        message text NOT NULL DEFAULT '',
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        last_count bigint NOT NULL,
        last_run_id uuid,
        resolved_at timestamptz)""",
    """CREATE TABLE IF NOT EXISTS integrity.alert_outbox (
        channel text NOT NULL,
        fingerprint text NOT NULL,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        count bigint NOT NULL,
        run_id uuid,
        told_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (channel, fingerprint))""",
)

RUN_FIX = "10000000-0000-0000-0000-000000000001"
RUN_CHECK = "10000000-0000-0000-0000-000000000002"
# Rows of every table, as earlier releases wrote them.
OLD_ROWS = f"""
INSERT INTO integrity.runs (id, kind, status, tool_version, options, summary, report) VALUES
  ('{RUN_FIX}', 'fix', 'completed', '0.1.0', '{{"select": ["REF003"]}}', '{{"changed": 1}}', NULL),
  ('{RUN_CHECK}', 'check', 'completed', '0.1.0', '{{}}', '{{"failing": 1}}', '{{"results": []}}');
INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) VALUES
  ('{RUN_FIX}', 'REF003', 'daily_plan', 'delete', '{{"id": "p1"}}', '{{"id": "p1", "spent_amount": 5}}', NULL),
  ('{RUN_FIX}', 'GOL001', 'goals', 'update', '{{"id": "g1"}}', '{{"progress": 40}}', '{{"progress": 25}}');
INSERT INTO integrity.run_results (run_id, fingerprint, code, table_name, severity, status, count) VALUES
  ('{RUN_CHECK}', 'fp1', 'REF003', 'daily_plan', 'high', 'fail', 3);
INSERT INTO integrity.findings (fingerprint, code, table_name, severity, message, first_seen, last_seen, last_count,
                                last_run_id) VALUES
  ('fp1', 'REF003', 'daily_plan', 'high', 'orphans', now() - interval '2 days', now(), 3, '{RUN_CHECK}');
INSERT INTO integrity.alert_outbox (channel, fingerprint, code, table_name, severity, count, run_id) VALUES
  ('slack', 'fp1', 'REF003', 'daily_plan', 'high', 3, '{RUN_CHECK}');
"""
TABLES = ("runs", "archive", "run_results", "findings", "alert_outbox")


def _old_tables(db: Database, rows: bool = True) -> None:
    with connect(db) as conn:
        for statement in OLD_DDL:
            conn.execute(statement.encode())
        if rows:
            conn.execute(OLD_ROWS.encode())
        conn.commit()


def _contents(db: Database) -> dict[str, list[Any]]:
    """Every row of every integrity table, and each table's columns as the catalog describes them."""
    out: dict[str, list[Any]] = {}
    with connect(db) as conn:
        for table in TABLES:
            out[table] = [r[0] for r in conn.execute(
                f"SELECT to_jsonb(t) FROM integrity.{table} t ORDER BY to_jsonb(t)::text").fetchall()]
            out[f"{table} columns"] = conn.execute(
                "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = 'integrity' AND table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
    return out


def _versions(db: Database) -> list[int]:
    return [int(v) for (v,) in _sql(db, "SELECT version FROM integrity.schema_version ORDER BY version")]


def _cli(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--db", cli_url(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def later_step(monkeypatch: pytest.MonkeyPatch) -> Step:
    """A step a later release adds (test-only): a column, not idempotent on purpose, so a second run would fail."""
    step = Step(integrity_schema.latest() + 1, "runs.note (test)",
                ("SELECT pg_sleep(0.2)", "ALTER TABLE integrity.runs ADD COLUMN note text"))
    monkeypatch.setattr(integrity_schema, "STEPS", (*integrity_schema.STEPS, step))
    return step


def test_the_first_write_upgrades_todays_tables_in_place_and_loses_nothing(
        capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    _old_tables(baseline_db)
    before = _contents(baseline_db)
    code, out, err = _cli(capsys, baseline_db, "check", "--record", "--select", "REF001")
    assert code == 0, err
    assert _versions(baseline_db) == [s.version for s in integrity_schema.STEPS]
    after = _contents(baseline_db)
    for table in TABLES:
        assert after[f"{table} columns"] == before[f"{table} columns"], table  # adopted as they are
        assert set(map(str, before[table])) <= set(map(str, after[table])), table  # every row kept, unchanged
    assert len(after["runs"]) == len(before["runs"]) + 1  # and the write itself happened
    code, out, err = _cli(capsys, baseline_db, "runs")
    assert code == 0 and RUN_FIX[:8] in out, err


def test_a_fix_run_of_before_can_still_be_undone_after_the_upgrade(
        capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    """The first write may be an undo: it upgrades, then reads the archive an earlier release wrote."""
    _old_tables(baseline_db, rows=False)
    _sql(baseline_db, f"""
        INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-0000-0000-000000000001', 'a@x', 'h');
        INSERT INTO integrity.runs (id, kind, status) VALUES ('{RUN_FIX}', 'fix', 'completed');
        INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after)
        SELECT '{RUN_FIX}', 'REF003', 'daily_plan', 'delete', jsonb_build_object('id', p.id), to_jsonb(p), NULL
          FROM (SELECT gen_random_uuid() AS id, '00000000-0000-0000-0000-000000000001'::uuid AS user_id,
                       now() AS date, 'food'::varchar AS category, now() AS created_at) p;""")
    code, out, err = _cli(capsys, baseline_db, "undo", RUN_FIX, "--apply")
    assert code == 0 and "restored" in out, err
    assert _versions(baseline_db) == [s.version for s in integrity_schema.STEPS]
    assert _sql(baseline_db, "SELECT count(*) FROM daily_plan WHERE category = 'food'") == [(1,)]


def test_a_new_database_gets_the_latest_version_from_its_first_write(baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        assert integrity_schema.upgrade(conn) == len(integrity_schema.STEPS)
        assert integrity_schema.upgrade(conn) == 0  # at its version: nothing is executed
    assert _versions(baseline_db) == [s.version for s in integrity_schema.STEPS]


@pytest.mark.parametrize("start", ["empty", "old tables", "version 1"])
def test_concurrent_first_writers_upgrade_once(baseline_db: Database, later_step: Step, start: str) -> None:
    """Four writers at once, each its own connection; the later step is not idempotent and sleeps, so two
    upgrades that overlapped would fail (duplicate column) or record twice."""
    if start == "old tables":
        _old_tables(baseline_db)
    elif start == "version 1":
        with connect(baseline_db) as conn:
            _apply_first(conn)
    before = _contents(baseline_db) if start != "empty" else None
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with connect(baseline_db) as conn:
                barrier.wait()
                store.ensure(conn)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert _versions(baseline_db) == [*(s.version for s in integrity_schema.STEPS)]
    assert _sql(baseline_db, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'integrity' "
                             "AND table_name = 'runs' AND column_name = 'note'") == [(1,)]
    if before is not None:
        after = _contents(baseline_db)
        for table in TABLES:
            assert [str(r) for r in after[table]] == [str(r) for r in before[table]] or table == "runs", table
        # runs gained the later step's column (NULL): every row is there with its values
        assert [{k: v for k, v in r.items() if k != "note"} for r in after["runs"]] == before["runs"]


def _apply_first(conn: psycopg.Connection[Any]) -> None:
    """Brings a database to version 1 as this release (without the later step) does."""
    steps = integrity_schema.STEPS
    try:
        integrity_schema.STEPS = steps[:1]
        integrity_schema.upgrade(conn)
    finally:
        integrity_schema.STEPS = steps


def test_a_later_step_is_applied_once(baseline_db: Database, later_step: Step, monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(baseline_db) as conn:
        _apply_first(conn)
    assert _versions(baseline_db) == [1]
    with connect(baseline_db) as conn:
        # every step after the first is applied, the later (test) one included
        assert integrity_schema.upgrade(conn) == len(integrity_schema.STEPS) - 1
        assert integrity_schema.upgrade(conn) == 0
        store.ensure(conn)
    assert _versions(baseline_db) == [s.version for s in integrity_schema.STEPS]
    names = [n for (n,) in _sql(baseline_db, "SELECT name FROM integrity.schema_version ORDER BY version")]
    assert names[-1] == "runs.note (test)"


def test_a_reader_and_a_writer_refuse_a_newer_schema_in_one_line(
        capsys: pytest.CaptureFixture[str], baseline_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later release upgraded the schema; this one must not misread (or write) it."""
    with connect(baseline_db) as conn:
        integrity_schema.upgrade(conn)
    _sql(baseline_db, "INSERT INTO integrity.schema_version (version, name) VALUES (99, 'from the future')")
    for args in (("runs",), ("check", "--record", "--select", "REF001")):
        code, out, err = _cli(capsys, baseline_db, *args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 3 and len(lines) == 1, (args, err)
        assert lines[0].startswith("error: the integrity schema is at version 99, newer than this mita-integrity "
                                   f"knows ({integrity_schema.latest()})"), lines[0]
    with connect(baseline_db) as conn, pytest.raises(DatabaseStateError, match="newer than this mita-integrity"):
        store.ensure(conn)
    assert _versions(baseline_db) == [*(s.version for s in integrity_schema.STEPS), 99]
