"""Hostile review of the repairs' search_path split (stop 26: a batch chooses and computes under the catalog's
search_path, writes under public): what the writes under WRITING still took from public (the archive's key and
images, a varchar key's equality), and the TEMPORARY privilege the computing now needs. Each failed on the first
version of that change; the fixes: pg_catalog.… functions and OPERATOR(pg_catalog.=) in every write (base.EQ),
and TEMPORARY granted by docs/roles.sql and checked by the preflight."""

from __future__ import annotations

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.undo import UndoMode, undo_run

from .conftest import PgServer
from .dbstate import archived, checksums
from .dbstate import run_sql as _sql
from .test_roles import drop_roles, make_roles
from .test_sql_script import SEEDED_DEFECTS

ANN = "00000000-0000-0000-0000-000000000001"
GOALS = (f"INSERT INTO goals (id, user_id, title, target_amount, saved_amount, progress) VALUES "
         f"('00000000-0000-0000-0000-0000000000c1', '{ANN}', 'g', 200, 50, 40); "
         # a key of one plan row whose spent_amount is not its transactions' sum (BUD001)
         f"INSERT INTO daily_plan (id, user_id, date, category, spent_amount, planned_amount) VALUES "
         f"('00000000-0000-0000-0000-0000000000b9', '{ANN}', date_trunc('day', now() AT TIME ZONE 'UTC') "
         f"AT TIME ZONE 'UTC', 'travel', 99, 5); "
         f"INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES "
         f"('00000000-0000-0000-0000-0000000000a9', '{ANN}', 'travel', 7, 'EUR', "
         f"(date_trunc('day', now() AT TIME ZONE 'UTC') + interval '9 hours') AT TIME ZONE 'UTC', now());")

# Functions of public that match the archive statement's arguments better than the built-ins: to_jsonb(anyelement)
# loses to an exact row type, jsonb_build_object(VARIADIC "any") to (text, uuid). The archive statement runs under
# WRITING (search_path = public), so these decide the archived key and before/after images.
ARCHIVE_SHADOWS = """
CREATE FUNCTION public.jsonb_build_object(text, uuid) RETURNS jsonb LANGUAGE sql IMMUTABLE
  AS $$SELECT pg_catalog.jsonb_build_object('id', '00000000-0000-0000-0000-00000000dead')$$;
CREATE FUNCTION public.to_jsonb(public.goals) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$SELECT '{"shadow": 1}'::jsonb$$;
CREATE FUNCTION public.to_jsonb(public.transactions) RETURNS jsonb LANGUAGE sql IMMUTABLE
  AS $$SELECT '{"shadow": 1}'::jsonb$$;
CREATE FUNCTION public.to_jsonb(public.daily_plan) RETURNS jsonb LANGUAGE sql IMMUTABLE
  AS $$SELECT '{"shadow": 1}'::jsonb$$;
"""
DROP_ARCHIVE_SHADOWS = """
DROP FUNCTION public.jsonb_build_object(text, uuid);
DROP FUNCTION public.to_jsonb(public.goals);
DROP FUNCTION public.to_jsonb(public.transactions);
DROP FUNCTION public.to_jsonb(public.daily_plan);
"""

IMAGES = """SELECT 'goals', t.id::text, pg_catalog.to_jsonb(t) FROM public.goals t
UNION ALL SELECT 'transactions', t.id::text, pg_catalog.to_jsonb(t) FROM public.transactions t
UNION ALL SELECT 'daily_plan', t.id::text, pg_catalog.to_jsonb(t) FROM public.daily_plan t"""


# And what undo calls: jsonb_populate_record(anyelement, jsonb) loses to an exact row type too.
UNDO_SHADOWS = "".join(
    f"CREATE FUNCTION public.jsonb_populate_record(public.{t}, jsonb) RETURNS public.{t} LANGUAGE sql IMMUTABLE "
    f"AS $$SELECT $1$$;\n" for t in ("goals", "transactions", "daily_plan"))
DROP_UNDO_SHADOWS = "".join(f"DROP FUNCTION public.jsonb_populate_record(public.{t}, jsonb);\n"
                            for t in ("goals", "transactions", "daily_plan"))


@pytest.mark.parametrize("shadowed", ["control", "fix", "fix and undo"])
@pytest.mark.parametrize("code", ["GOL001", "REF001", "BUD001", "DUP002"])
def test_the_archive_holds_the_rows_own_key_and_image_whatever_public_holds(baseline_db: Database, code: str,
                                                                            shadowed: str) -> None:
    """GOL001 (row update), REF001 (row delete), BUD001 (recompute): each archives the key and the before-image of
    the row it changes, which `undo` restores from. Those are computed in the archive statement, under WRITING.
    (DUP002 takes its before-image under CHOOSING, its after-image and key under WRITING.)"""
    _sql(baseline_db, SEEDED_DEFECTS + GOALS)
    truth = {(t, pk): img for t, pk, img in _sql(baseline_db, IMAGES)}
    before = checksums(baseline_db)
    if shadowed != "control":
        _sql(baseline_db, ARCHIVE_SHADOWS)
    request = FixRequest(select=(code,))
    run = apply_fix(baseline_db, plan_fix(baseline_db, request), request).run_id
    rows = _sql(baseline_db, "SELECT table_name, pk, before FROM integrity.archive "
                             f"WHERE run_id = '{run}' AND before IS NOT NULL")
    assert rows, archived(baseline_db, run)
    if shadowed == "fix and undo":
        _sql(baseline_db, UNDO_SHADOWS)
    elif shadowed == "fix":
        _sql(baseline_db, DROP_ARCHIVE_SHADOWS)
    wrong = [(t, pk, b) for t, pk, b in rows if truth.get((t, pk.get("id"))) != b]
    undone = undo_run(baseline_db, run, mode=UndoMode.ALL)
    if shadowed == "fix and undo":
        _sql(baseline_db, DROP_UNDO_SHADOWS + DROP_ARCHIVE_SHADOWS)
    restored = checksums(baseline_db) == before
    assert (wrong, undone.applied, restored) == ([], True, True)


# A table the application adds later with a varchar key and a user_id: REF010 covers it (every uuid user_id table no
# specific REF rule covers). Its DELETE under WRITING compares the key with `=`, and pg_catalog has no
# =(varchar, varchar): a public one is an exact match.
VARCHAR_KEYED = f"""
INSERT INTO users (id, email, password_hash, has_onboarded, monthly_income) VALUES
  ('{ANN}', 'ann@x.org', 'h', true, 0);
CREATE TABLE public.devices (id varchar(40) PRIMARY KEY, user_id uuid NOT NULL);
INSERT INTO public.devices VALUES ('mine', '{ANN}'), ('orphan', '00000000-0000-0000-0000-0000000000ff');
"""
VARCHAR_SHADOW = """
CREATE FUNCTION public.shadow_vv(varchar, varchar) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$SELECT true$$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.shadow_vv);
"""


def test_a_varchar_keyed_orphan_delete_removes_only_the_orphan(baseline_db: Database) -> None:
    _sql(baseline_db, VARCHAR_KEYED + VARCHAR_SHADOW)
    request = FixRequest(select=("REF010",))
    plan = plan_fix(baseline_db, request)
    assert any(i.rule.table == "devices" for i in plan.items), [(i.code, i.rule.table) for i in plan.items]
    apply_fix(baseline_db, plan, request)
    with connect(baseline_db) as conn:
        left = conn.execute("SELECT id FROM public.devices ORDER BY 1").fetchall()
    assert left == [("mine",)]


def test_the_writer_mends_rows_in_a_database_that_revoked_temp_from_public(
        capsys: pytest.CaptureFixture[str], pg: PgServer, baseline_db: Database) -> None:
    """The writer had TEMPORARY only through PUBLIC, which a hardened database revokes: a row repair that sets
    columns creates a temporary table (mita_fix_values) in every batch. docs/roles.sql grants it now."""
    _sql(baseline_db, SEEDED_DEFECTS + GOALS)
    roles = make_roles(pg, baseline_db)
    try:
        _sql(baseline_db, f'REVOKE TEMPORARY ON DATABASE "{baseline_db.dbname}" FROM PUBLIC')
        before = checksums(baseline_db)
        code = main(["--db", roles.writer_url, "fix", "--apply", "--select", "REF001,GOL001", "--format", "json"])
        out, err = capsys.readouterr()
        refused_before_change = (code == 3 and err.startswith("error: ") and "unexpected" not in err
                                 and checksums(baseline_db) == before)
        assert code == 0 or refused_before_change, (code, err[-600:])
        assert code == 0, err
    finally:
        drop_roles(baseline_db, roles)


def test_a_writer_without_temporary_is_refused_before_anything_changes(
        capsys: pytest.CaptureFixture[str], pg: PgServer, baseline_db: Database) -> None:
    """REF001 alone deletes (no temporary table); with GOL001 in the plan the preflight asks for TEMPORARY first,
    rather than fail half-way after REF001's batches committed."""
    _sql(baseline_db, SEEDED_DEFECTS + GOALS)
    roles = make_roles(pg, baseline_db)
    try:
        _sql(baseline_db, f'REVOKE TEMPORARY ON DATABASE "{baseline_db.dbname}" FROM PUBLIC, "{roles.writer}"')
        before = checksums(baseline_db)
        code = main(["--db", roles.writer_url, "fix", "--apply", "--select", "REF001,GOL001"])
        _, err = capsys.readouterr()
        assert code == 3 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert "TEMPORARY on the database" in err and checksums(baseline_db) == before, err
        assert main(["--db", roles.writer_url, "fix", "--apply", "--select", "REF001"]) == 0
    finally:
        drop_roles(baseline_db, roles)
