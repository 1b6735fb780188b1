"""The psql script: generated from the catalogue, committed, and counting what `check` counts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mita_integrity.check import sqlscript
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database import embedded
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

from .conftest import PgServer

COMMITTED = Path(__file__).resolve().parents[1] / "sql" / "data_integrity_check.sql"


def test_committed_script_equals_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql"]) == 0
    printed = capsys.readouterr().out
    assert printed == sqlscript.generate()
    assert COMMITTED.read_text() == printed, "run `mita-integrity sql > sql/data_integrity_check.sql`"


def _psql(pg: PgServer) -> Path:
    if pg.cluster is not None:
        return pg.cluster.bindir / "psql"
    return embedded.bin_dir() / "psql"


def psql_counts(pg: PgServer, db: Database) -> dict[tuple[str, str], int]:
    """Gives {(code, table): count} as the psql script prints them."""
    url = build_url(db.parsed.params, mask_password=False)
    proc = subprocess.run([str(_psql(pg)), url, "-X", "-A", "-t", "-F", "|", "-f", str(COMMITTED)],
                          capture_output=True, text=True, check=True)
    assert "ERROR" not in proc.stderr, proc.stderr
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and len(parts[0]) == 6 and parts[0][:3].isalpha() and parts[0][3:].isdigit():
            counts[(parts[0], parts[1])] = int(parts[2])
    return counts


SEEDED_DEFECTS = """
INSERT INTO users (id, email, password_hash, has_onboarded, monthly_income) VALUES
  ('00000000-0000-0000-0000-000000000001', 'Ann@x.org', 'h', true, 0),
  ('00000000-0000-0000-0000-000000000002', ' ann@x.org', 'h', true, 1000),
  ('00000000-0000-0000-0000-000000000003', '  ', 'h', false, NULL);
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES
  ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'food', 12.5, 'EUR',
   date_trunc('day', now()) + interval '9 hours', now()),
  ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-000000000001', 'food', 12.5, 'EUR',
   date_trunc('day', now()) + interval '9 hours', now()),
  ('00000000-0000-0000-0000-0000000000a3', '00000000-0000-0000-0000-0000000000ff', 'food', -3, 'EU',
   now() + interval '3 days', now());
INSERT INTO daily_plan (id, user_id, date, category, spent_amount, planned_amount) VALUES
  ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-000000000001', date_trunc('day', now()),
   'food', 10, 5),
  ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-000000000001',
   date_trunc('day', now()) + interval '14 hours', 'food', 0, 5),
  ('00000000-0000-0000-0000-0000000000b3', '00000000-0000-0000-0000-0000000000ff', date_trunc('day', now()),
   NULL, 0, -1);
INSERT INTO expenses (user_id, action, amount, date) VALUES ('42', 'x', 1, now());
INSERT INTO moods (id, user_id, date, mood) VALUES (gen_random_uuid(), gen_random_uuid(), now(), 'ok');
"""


def test_psql_script_finds_the_same_counts_as_check(pg: PgServer, baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute(SEEDED_DEFECTS)
        conn.commit()
    report = run_check(baseline_db, CheckRequest())
    from_check = {(r.code, r.table): r.count for r in report.results if r.status.value in ("pass", "fail")}
    from_psql = psql_counts(pg, baseline_db)
    failing = {k: v for k, v in from_check.items() if v}
    assert len(failing) >= 15, failing
    for key, count in from_check.items():
        default = 0 if key[1] == "(schema)" else None  # psql prints no row where check says "(schema)"
        assert from_psql.get(key, default) == count, (key, count, from_psql.get(key))


# Children holding orphans whose parent's scan does not read them: a child whose user_id is its own (the
# parent has none), and a child of a table in another schema. A partition's rows are read with its parent's.
INHERITED_ORPHANS = """
CREATE TABLE audit_base (id bigserial, note text);
CREATE TABLE user_audit (user_id uuid, deleted_at timestamptz) INHERITS (audit_base);
INSERT INTO user_audit (user_id, note, deleted_at) VALUES (gen_random_uuid(), 'orphan', now());
CREATE SCHEMA archive;
CREATE TABLE archive.base (id int);
CREATE TABLE legacy_links (user_id varchar(64)) INHERITS (archive.base);
INSERT INTO legacy_links (id, user_id) VALUES (1, 'not-a-uuid'), (2, '00000000-0000-0000-0000-0000000000ff');
CREATE TABLE events_p (user_id uuid, at date) PARTITION BY RANGE (at);
CREATE TABLE events_p_2026 PARTITION OF events_p FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events_p VALUES (gen_random_uuid(), '2026-05-01');
"""


def test_psql_script_reads_inheritance_children_as_check_does(pg: PgServer, baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute(INHERITED_ORPHANS)
        conn.commit()
    report = run_check(baseline_db, CheckRequest())
    from_check = {(r.code, r.table): r.count for r in report.results if r.status.value in ("pass", "fail")}
    assert from_check[("REF010", "user_audit")] == 1
    assert from_check[("REF011", "legacy_links")] == 2
    assert from_check[("REF010", "events_p")] == 1 and ("REF010", "events_p_2026") not in from_check
    from_psql = psql_counts(pg, baseline_db)
    for code in ("REF010", "REF011", "SDL001"):  # check may decide a key-guarded table without a scan (no row)
        assert {k: from_psql.get(k) for k in from_check if k[0] == code} == \
               {k: v for k, v in from_check.items() if k[0] == code}, code
        assert {k: v for k, v in from_psql.items() if k[0] == code and v} == \
               {k: v for k, v in from_check.items() if k[0] == code and v}, code
