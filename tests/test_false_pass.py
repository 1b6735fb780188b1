"""False passes: a database that could make `check` (or the psql script) report fewer violations than it has."""

from __future__ import annotations

import uuid

import pytest

from mita_integrity.check.rules.context import load_schema
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect, transaction
from mita_integrity.findings import Status
from mita_integrity.migration import command as migrate
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.repairs import REPAIRS
from mita_integrity.repair.repairs.rows import RowRepair
from mita_integrity.report import next_steps
from mita_integrity.verify.reads import checks as verify_checks
from mita_integrity.verify.scorecard import run_verify

from .conftest import PgServer, template_at
from .dbstate import archived
from .test_sql_script import SEEDED_DEFECTS, psql_counts

# Functions and operators in public whose signatures match the MITA columns' types (varchar, numeric against an
# integer literal, uuid, text) better than the built-ins do: under search_path = public (pg_catalog searched
# first, implicitly) PostgreSQL still picks them, because it chooses among every visible candidate by signature.
# Each answers so that no violation would be seen.
SHADOWS = """
CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'shadow'$$;
CREATE FUNCTION public.upper(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'SHADOW'$$;
CREATE FUNCTION public.btrim(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'shadow'$$;
CREATE FUNCTION public.length(varchar) RETURNS integer LANGUAGE sql IMMUTABLE AS $$SELECT 6$$;
CREATE FUNCTION public.char_length(varchar) RETURNS integer LANGUAGE sql IMMUTABLE AS $$SELECT 6$$;
CREATE FUNCTION public.abs(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$SELECT 0$$;
CREATE FUNCTION public.shadow_vv(varchar, varchar) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$SELECT false$$;
CREATE FUNCTION public.shadow_ni(numeric, integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$SELECT false$$;
CREATE FUNCTION public.shadow_in(integer, numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$SELECT false$$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.shadow_vv);
CREATE OPERATOR public.<> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.shadow_vv);
CREATE OPERATOR public.~ (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.shadow_vv);
CREATE OPERATOR public.!~ (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.shadow_vv);
CREATE OPERATOR public.~~ (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.shadow_vv);
CREATE OPERATOR public.< (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_ni);
CREATE OPERATOR public.> (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_ni);
CREATE OPERATOR public.<= (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_ni);
CREATE OPERATOR public.>= (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_ni);
CREATE OPERATOR public.= (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_ni);
CREATE OPERATOR public.<> (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_ni);
CREATE OPERATOR public.< (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = public.shadow_in);
CREATE OPERATOR public.> (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = public.shadow_in);
"""


def _counts(db: Database) -> dict[tuple[str, str], int | None]:
    report = run_check(db, CheckRequest())
    return {(r.code, r.table): r.count for r in report.results}


def test_functions_and_operators_in_public_do_not_hide_violations(pg: PgServer, baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute(SEEDED_DEFECTS)
        conn.commit()
    from_check, from_psql = _counts(baseline_db), psql_counts(pg, baseline_db)
    assert sum(1 for v in from_check.values() if v) >= 15, from_check
    with connect(baseline_db) as conn:
        conn.execute(SHADOWS)
        conn.commit()
    shadowed = _counts(baseline_db)
    assert {k: (v, shadowed.get(k)) for k, v in from_check.items() if shadowed.get(k) != v} == {}
    assert shadowed.keys() == from_check.keys()
    shadowed_psql = psql_counts(pg, baseline_db)
    assert {k: (v, shadowed_psql.get(k)) for k, v in from_psql.items() if shadowed_psql.get(k) != v} == {}


# 0024's CHECKs replaced by same-named ones that say something else (or nothing), and one left NOT VALID.
IMPOSTOR_CHECKS = """
ALTER TABLE transactions DROP CONSTRAINT ck_transactions_amount_nonnegative,
  ADD CONSTRAINT ck_transactions_amount_nonnegative CHECK (true);
ALTER TABLE goals DROP CONSTRAINT ck_goals_progress_le_100,
  ADD CONSTRAINT ck_goals_progress_le_100 CHECK (progress <= 100000);
ALTER TABLE daily_plan DROP CONSTRAINT ck_daily_plan_planned_nonnegative,
  ADD CONSTRAINT ck_daily_plan_planned_nonnegative CHECK (planned_amount >= 0) NOT VALID;
INSERT INTO users (id, email, password_hash, has_onboarded, monthly_income) VALUES
  ('00000000-0000-0000-0000-000000000001', 'ann@x.org', 'h', true, 0);
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES
  ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'food', -3, 'EUR', now(), now());
"""


def test_a_same_named_check_that_says_otherwise_is_not_0024s(pg: PgServer, baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "head")
    before = run_check(baseline_db, CheckRequest(select=("SCH004", "AMT003")))
    assert {(r.code, r.table): r.count for r in before.results if r.code == "SCH004"} == \
           {("SCH004", "daily_plan"): 0, ("SCH004", "goals"): 0, ("SCH004", "transactions"): 0}
    with connect(baseline_db) as conn:
        conn.execute(IMPOSTOR_CHECKS)
        conn.commit()
    report = run_check(baseline_db, CheckRequest(select=("SCH004", "AMT003")))
    found = {(r.code, r.table): (r.count, r.sample) for r in report.results}
    assert found[("SCH004", "transactions")] == (1, ("ck_transactions_amount_nonnegative (another definition)",))
    assert found[("SCH004", "goals")] == (1, ("ck_goals_progress_le_100 (another definition)",))
    assert found[("SCH004", "daily_plan")] == (1, ("ck_daily_plan_planned_nonnegative",))
    # the hint says what a person does: replace an impostor, or resolve the rows of a NOT VALID one
    hints = {r.table: " ".join(r.hint.split()) for r in next_steps.revised(report).results if r.code == "SCH004"}
    assert "enforces something else" in hints["transactions"] and "NOT VALID" not in hints["transactions"]
    assert "0024 ran and left it NOT VALID" in hints["daily_plan"]
    # CHECK (true) under 0024's name rules nothing out: AMT003 scans and finds the negative amount.
    amt003 = next(r for r in report.results if r.code == "AMT003")
    assert (amt003.status, amt003.count) == (Status.FAIL, 1)
    from_psql = psql_counts(pg, baseline_db)
    assert {k: v for k, v in from_psql.items() if k[0] == "SCH004"} == \
           {("SCH004", "daily_plan"): 1, ("SCH004", "goals"): 1, ("SCH004", "transactions"): 1}


def test_fix_takes_no_row_the_catalogs_operators_do_not_call_violating(pg: PgServer, baseline_db: Database) -> None:
    """Shadows in public that call every row violating: `fix` chooses its candidates under the catalog's
    search_path, and a row repair (update or delete of its candidates, after a lock that tests them again) takes
    no row beyond those the same database without the shadows gives. (A calendar repair computes its sums in
    its batch's own statements: the xfail below.)"""
    row_repairs = sorted(code for code, repair in REPAIRS.items() if isinstance(repair, RowRepair))
    # GOL001 (progress drifting from saved/target) asks target_amount > 0 first: the first goal violates it (so
    # fix plans GOL001), and a shadowed `>` would let the second, of a negative target, in with it
    goal = ("INSERT INTO goals (id, user_id, title, target_amount, saved_amount, progress) VALUES "
            "('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-000000000001', 'g', 100, 10, 50), "
            "('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-000000000001', 'g', -5, 1, 50);")
    shadowed = pg.create_database(f"mita_t_{uuid.uuid4().hex[:12]}", template=template_at(pg, migrate.BASELINE))
    try:
        runs = {}
        for db, shadows in ((baseline_db, ""), (shadowed, SHADOWS.replace("false$$", "true$$"))):
            with connect(db) as conn:
                conn.execute(SEEDED_DEFECTS + goal + shadows)
                conn.commit()
            request = FixRequest(select=row_repairs)
            outcome = apply_fix(db, plan_fix(db, request), request)
            runs[db.dbname] = archived(db, outcome.run_id)
        assert runs[baseline_db.dbname]
        beyond = {k: (n, runs[baseline_db.dbname].get(k, 0)) for k, n in runs[shadowed.dbname].items()
                  if n > runs[baseline_db.dbname].get(k, 0)}
        assert not beyond, beyond
    finally:
        pg.drop_database(shadowed.dbname)


def test_fix_chooses_the_same_rows_whatever_public_holds(pg: PgServer, baseline_db: Database) -> None:
    """The shadows answer `true` here: were they chosen, `fix` would take rows that violate nothing. (A strict
    xfail until stop 26: a batch's own statements ran under public, and a calendar repair's sums took the
    shadows; now only its writes do, which name no operator a shadow matches better.)"""
    shadowed = pg.create_database(f"mita_t_{uuid.uuid4().hex[:12]}", template=template_at(pg, migrate.BASELINE))
    try:
        runs = {}
        for db, shadows in ((baseline_db, ""), (shadowed, SHADOWS.replace("false$$", "true$$"))):
            with connect(db) as conn:
                conn.execute(SEEDED_DEFECTS + shadows)
                conn.commit()
            request = FixRequest()
            outcome = apply_fix(db, plan_fix(db, request), request)
            runs[db.dbname] = archived(db, outcome.run_id)
        assert runs[shadowed.dbname] == runs[baseline_db.dbname]
        assert runs[baseline_db.dbname]
    finally:
        pg.drop_database(shadowed.dbname)


# Arithmetic a row repair's SET would take from public: numeric * integer is no operator of pg_catalog (it casts
# the integer), so these match better. Every goal's progress would be written as 0.
ARITHMETIC_SHADOWS = """
CREATE FUNCTION public.shadow_times(numeric, integer) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$SELECT 0::numeric$$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_times);
"""


def test_a_row_repair_writes_the_values_the_catalog_computes(pg: PgServer, baseline_db: Database) -> None:
    """GOL001 sets progress = least(saved / target * 100, 100): computed under the catalog's search_path before
    the UPDATE (which runs under public, for the application's triggers), not by a better-matching `*` of
    public."""
    goals = ("INSERT INTO users (id, email, password_hash, has_onboarded, monthly_income) VALUES "
             "('00000000-0000-0000-0000-000000000001', 'ann@x.org', 'h', true, 0); "
             "INSERT INTO goals (id, user_id, title, target_amount, saved_amount, progress) VALUES "
             "('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-000000000001', 'g', 200, 50, 40), "
             "('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-000000000001', 'g', 300, 300, 0);")
    with connect(baseline_db) as conn:
        conn.execute(goals + ARITHMETIC_SHADOWS)
        conn.commit()
    request = FixRequest(select=("GOL001",))
    outcome = apply_fix(baseline_db, plan_fix(baseline_db, request), request)
    assert archived(baseline_db, outcome.run_id) == {("goals", "update"): 2}
    with connect(baseline_db) as conn:
        rows = conn.execute("SELECT progress::text FROM goals ORDER BY id").fetchall()
    assert rows == [("25.00",), ("100.00",)]


def test_every_row_repairs_assignments_split_into_the_columns_they_set() -> None:
    """values_sql computes each assignment's expression into the column it sets: the split must give back the
    SET list exactly (a comma or '=' inside a call, a subquery or a literal stays in its expression)."""
    from mita_integrity.check.rule_registry import ALL_RULES
    from mita_integrity.repair.repairs.rows import split_assignments

    fixes = {r.code: r.fix.assignments for r in ALL_RULES if getattr(getattr(r, "fix", None), "assignments", "")}
    assert len(fixes) >= 10, fixes
    for code, assignments in fixes.items():
        pairs = split_assignments(assignments)
        assert all(c.isidentifier() and e for c, e in pairs), (code, pairs)
        assert " ".join(", ".join(f"{c} = {e}" for c, e in pairs).split()) == " ".join(assignments.split()), code
    assert split_assignments("a = 'x, y = (z', b = f(1, (2)), c = (SELECT u.c FROM u WHERE u.id = t.id)") == [
        ("a", "'x, y = (z'"), ("b", "f(1, (2))"), ("c", "(SELECT u.c FROM u WHERE u.id = t.id)")]


# 0024's own text, bound when it was created to an operator of public that lets every amount through.
BOUND_TO_A_SHADOW = """
CREATE FUNCTION public.shadow_true(numeric, integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$SELECT true$$;
CREATE OPERATOR public.>= (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.shadow_true);
UPDATE transactions SET category = 'other' WHERE category IS NULL;
ALTER TABLE transactions ALTER COLUMN category SET NOT NULL, DROP CONSTRAINT ck_transactions_amount_nonnegative,
  ADD CONSTRAINT ck_transactions_amount_nonnegative CHECK (amount >= 0 OR category IN ('refund', 'income'));
INSERT INTO users (id, email, password_hash, has_onboarded, monthly_income) VALUES
  ('00000000-0000-0000-0000-000000000001', 'ann@x.org', 'h', true, 0);
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES
  ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'food', -3, 'EUR', now(), now());
"""


def test_a_check_bound_to_an_operator_of_public_guarantees_nothing(pg: PgServer, baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "head")
    with connect(baseline_db) as conn:
        conn.execute(BOUND_TO_A_SHADOW)
        conn.commit()
    report = run_check(baseline_db, CheckRequest(select=("SCH004", "AMT003")))
    found = {(r.code, r.table): (r.status, r.count) for r in report.results}
    assert found[("AMT003", "transactions")] == (Status.FAIL, 1)
    assert found[("SCH004", "transactions")] == (Status.FAIL, 1)
    assert {k: v for k, v in psql_counts(pg, baseline_db).items() if k[0] in ("SCH004", "AMT003")} == \
           {("SCH004", "daily_plan"): 0, ("SCH004", "goals"): 0, ("SCH004", "transactions"): 1,
            ("AMT003", "transactions"): 1}
    with connect(baseline_db) as conn, transaction(conn, read_only=True) as cur:  # verify's reading of 0024
        ok, said = verify_checks(cur, load_schema(cur))
    assert not ok and "ck_transactions_amount_nonnegative on transactions is CHECK (" in said, said


def test_an_incremental_check_is_not_fooled_by_public_either(baseline_db: Database) -> None:
    """check --incremental evaluates the row rules on the changed rows and the base's violators itself."""
    from .test_incremental import recorded, same_as_full

    with connect(baseline_db) as conn:
        conn.execute(SEEDED_DEFECTS)
        conn.commit()
    recorded(baseline_db)
    with connect(baseline_db) as conn:
        conn.execute(SHADOWS + """
            INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES
              ('00000000-0000-0000-0000-0000000000a9', '00000000-0000-0000-0000-000000000001', 'food', -7, 'EU',
               now() + interval '4 days', now());""")
        conn.commit()
    inc = same_as_full(baseline_db)
    assert inc.mode == "incremental"


def test_verify_reads_the_same_whatever_public_holds(baseline_db: Database) -> None:
    migrate.upgrade(baseline_db, "head")
    with connect(baseline_db) as conn:
        conn.execute("""
            INSERT INTO users (id, email, password_hash) VALUES
              ('00000000-0000-0000-0000-000000000001', 'Ann@x.org', 'h'),
              ('00000000-0000-0000-0000-000000000002', 'ann@x.org', 'h');""")
        conn.commit()
    before = run_verify(baseline_db)
    with connect(baseline_db) as conn:
        conn.execute(SHADOWS)
        conn.commit()
    after = run_verify(baseline_db)
    assert [(line.name, line.passed, line.evidence) for line in after.lines] == \
           [(line.name, line.passed, line.evidence) for line in before.lines]


# A table of the application's referencing transactions: NO ACTION (the orphan it references is left to a person),
# or ON DELETE CASCADE without a single-column primary key (its rows cannot be archived: the same).
RECEIPTS = {
    "no_action": "CREATE TABLE public.receipts (id uuid PRIMARY KEY, transaction_id uuid "
                 "REFERENCES public.transactions (id));",
    "cascade_no_pk": "CREATE TABLE public.receipts (id uuid, transaction_id uuid "
                     "REFERENCES public.transactions (id) ON DELETE CASCADE);",
}
ORPHAN_WITH_A_RECEIPT = """
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES
  ('00000000-0000-0000-0000-0000000000a3', '00000000-0000-0000-0000-0000000000ff', 'food', 3, 'EUR', now(), now()),
  ('00000000-0000-0000-0000-0000000000a4', '00000000-0000-0000-0000-0000000000ff', 'food', 3, 'EUR', now(), now());
INSERT INTO receipts VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000a4');
"""


@pytest.mark.parametrize("receipts", sorted(RECEIPTS))
def test_a_delete_repair_of_a_referenced_table_still_runs(baseline_db: Database, receipts: str) -> None:
    """The candidates (chosen under the catalog's search_path) name the dependents that block a delete with their
    schema (the hostile review found them unqualified: UndefinedTable, nothing repaired)."""
    with connect(baseline_db) as conn:
        conn.execute(RECEIPTS[receipts] + ORPHAN_WITH_A_RECEIPT)
        conn.commit()
    request = FixRequest(select=("REF001",))
    outcome = apply_fix(baseline_db, plan_fix(baseline_db, request), request)
    # the orphan without a receipt is deleted; the one a receipt references is left to a person
    assert archived(baseline_db, outcome.run_id) == {("transactions", "delete"): 1}
