"""False passes: a database that could make `check` (or the psql script) report fewer violations than it has."""

from __future__ import annotations

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect

from .conftest import PgServer
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
