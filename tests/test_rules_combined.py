"""Rules run together give what each gives alone: no shared alias, no shared join, no lost finding.

Each rule case runs alone in test_rule_cases; these tests run them together, where a combined pass could
let one rule's SQL read another's join (issue 13.1: REF008 read REF001's `users` join and passed).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mita_integrity.check.engine import pass_joins
from mita_integrity.check.rule_registry import ALL_RULES, FAMILY_OF
from mita_integrity.check.rules.base import Join, RowRule
from mita_integrity.check.rules.context import schema_from_metadata
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.models import metadata
from mita_integrity.findings import FixSafety, Result, Severity
from mita_integrity.migration import command as migrate

from .conftest import PgServer, template_at
from .test_rule_cases import CASES, RuleCase

USER = "00000000-0000-0000-0000-000000000001"


def _execute(db: Database, statement: str) -> None:
    with connect(db) as conn:
        conn.execute(statement.encode())


def _by_code(results: tuple[Result, ...] | list[Result], code: str) -> Result:
    found = [r for r in results if r.code == code]
    assert len(found) == 1, found
    return found[0]


def _counts(db: Database, select: list[str], **options: Any) -> dict[tuple[str, str], tuple[str, int, tuple[str, ...]]]:
    report = run_check(db, CheckRequest(select=select, **options))
    return {(r.code, r.table): (r.status.value, r.count, tuple(sorted(r.sample))) for r in report.results}


GOAL_ORPHAN = f"""
ALTER TABLE transactions DROP CONSTRAINT fk_transactions_goal_id;
INSERT INTO users (id, email, password_hash) VALUES ('{USER}', 'ann@example.com', 'h');
INSERT INTO transactions (id, user_id, category, amount, spent_at, goal_id) VALUES
  ('10000000-0000-0000-0000-000000000002', '{USER}', 'savings', 5, now(), 'dead0000-0000-0000-0000-000000000002');
"""


@pytest.mark.parametrize("select", [["REF008"], ["REF001", "REF008"], ["REF", "SDL002"], []])
def test_an_orphan_goal_is_found_whatever_runs_beside_it(baseline_db: Database, select: list[str]) -> None:
    """Issue 13.1: with REF001 in the same pass, REF008 tested the users join and reported pass 0."""
    _execute(baseline_db, GOAL_ORPHAN)
    report = run_check(baseline_db, CheckRequest(select=select))
    ref008 = _by_code(report.results, "REF008")
    assert (ref008.status.value, ref008.count) == ("fail", 1)
    assert ref008.sample == ("10000000-0000-0000-0000-000000000002",)


def test_an_orphan_completion_is_found_beside_its_siblings(baseline_db: Database) -> None:
    """REF006 (habit) and REF007 (user) read the same table through different parents."""
    _execute(baseline_db, f"""
ALTER TABLE habit_completions DROP CONSTRAINT habit_completions_habit_id_fkey;
ALTER TABLE habit_completions DROP CONSTRAINT habit_completions_user_id_fkey;
INSERT INTO users (id, email, password_hash) VALUES ('{USER}', 'ann@example.com', 'h');
INSERT INTO habits (id, user_id, title) VALUES ('50000000-0000-0000-0000-000000000001', '{USER}', 'Walk');
INSERT INTO habit_completions (id, habit_id, user_id) VALUES
  ('51000000-0000-0000-0000-000000000001', 'dead0000-0000-0000-0000-000000000009', '{USER}'),
  ('51000000-0000-0000-0000-000000000002', '50000000-0000-0000-0000-000000000001',
   'dead0000-0000-0000-0000-000000000008'),
  ('51000000-0000-0000-0000-000000000003', '50000000-0000-0000-0000-000000000001', '{USER}');
""")
    alone = {code: _counts(baseline_db, [code])[(code, "habit_completions")] for code in ("REF006", "REF007")}
    together = _counts(baseline_db, ["REF006", "REF007"])
    assert alone == {"REF006": ("fail", 1, ("51000000-0000-0000-0000-000000000001",)),
                     "REF007": ("fail", 1, ("51000000-0000-0000-0000-000000000002",))}
    assert {c: together[(c, "habit_completions")] for c in alone} == alone


# ---- every rule case at once -------------------------------------------------------------------------------

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EMAIL = re.compile(r"(?<=['\s])([A-Za-z0-9._%+-]+@)")
# A case joins the combined database only when its setup writes rows (or relaxes a constraint, which the
# combined database has relaxed already): other DDL would change what every other case is checked against.
OTHER_DDL = re.compile(r"\b(CREATE|DROP\s+TABLE|ADD\s+CONSTRAINT|ADD\s+COLUMN|DROP\s+COLUMN|TYPE|RENAME|SET\s+NOT|"
                       r"SCHEMA|DO\s+\$|INDEX|TRIGGER|search_path|SET\s+DEFAULT)\b", re.IGNORECASE)
RELAX = re.compile(r"ALTER\s+TABLE\s+\w+\s+(DROP\s+CONSTRAINT\s+(IF\s+EXISTS\s+)?\w+|ALTER\s+COLUMN\s+\w+\s+DROP\s+NOT"
                   r"\s+NULL)\s*;", re.IGNORECASE)
# Drops every constraint that could make a rule `guaranteed`: foreign keys, CHECKs, NOT NULLs (keys stay).
UNGUARD = """
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.conrelid::regclass AS tbl, c.conname FROM pg_constraint c
             JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = 'public' AND c.contype IN ('f', 'c', 'u') LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.tbl, r.conname);
  END LOOP;
  FOR r IN SELECT a.attrelid::regclass AS tbl, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND a.attnotnull AND NOT a.attisdropped
              AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND x.indisprimary
                              AND a.attnum = ANY (x.indkey)) LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', r.tbl, r.attname);
  END LOOP;
END $$;
"""


def _combinable(case: RuleCase) -> bool:
    code = case.code
    if case.options or case.requires_extension or case.xfail or case.select != code or code[:3] in ("SCH", "PHY"):
        return False
    if any(e.get("status", "fail") not in ("fail", "pass") for e in case.expect):
        return False
    return not OTHER_DDL.search(RELAX.sub("", case.setup))


def _rewritten(case: RuleCase, number: int) -> str:
    """Gives the case's setup with its own ids and e-mails, so that no two cases share a key or an address."""
    def uuid_of(match: re.Match[str]) -> str:
        old = match.group(0)
        new = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{case.id}/{old.lower()}"))
        return new.upper() if old != old.lower() and old == old.upper() else new

    return EMAIL.sub(lambda m: f"c{number}x{m.group(1)}", UUID.sub(uuid_of, RELAX.sub("", case.setup)))


def _fresh(pg: PgServer) -> Database:
    db = pg.create_database(f"mita_t_{uuid.uuid4().hex[:12]}", template=template_at(pg, migrate.BASELINE))
    _execute(db, UNGUARD)
    return db


def _full(db: Database) -> dict[tuple[str, str], tuple[str, int]]:
    report = run_check(db, CheckRequest())
    return {(r.code, r.table): (r.status.value, r.count) for r in report.results if r.code[:3] not in ("SCH", "PHY")}


@pytest.fixture(scope="module")
def combined(pg: PgServer) -> Iterator[tuple[Database, dict[tuple[str, str], int], list[RuleCase]]]:
    """One database holding every combinable case, and what the full catalogue finds on each case alone."""
    db = _fresh(pg)
    alone_sum: dict[tuple[str, str], int] = {}
    loaded: list[RuleCase] = []
    for number, case in enumerate(c for c in CASES if _combinable(c)):
        setup = _rewritten(case, number)
        try:
            with connect(db) as conn:
                conn.execute(setup.encode())
        except psycopg.errors.UniqueViolation:
            continue  # integer keys of two cases meet (expenses.id 1 …): this case stays out, and out of the sums
        single = _fresh(pg)
        try:
            _execute(single, setup)
            alone = _full(single)
        finally:
            pg.drop_database(single.dbname)
        for expected in case.expect:  # the whole catalogue on the case alone: its own code as the case says
            assert alone.get((case.code, expected["table"]), ("?", -1))[1] == int(expected.get("count", 0)), (
                f"{case.id}: {case.code} on {expected['table']} with the whole catalogue: "
                f"{alone.get((case.code, expected['table']))}, the case expects {expected.get('count', 0)}")
        for key, (_, count) in alone.items():
            alone_sum[key] = alone_sum.get(key, 0) + count
        loaded.append(case)
    yield db, alone_sum, loaded
    pg.drop_database(db.dbname)


def test_all_cases_at_once(combined: tuple[Database, dict[tuple[str, str], int], list[RuleCase]]) -> None:
    """Issue 13.1: every case in one database, the whole catalogue run once; each count is what the cases give."""
    db, alone_sum, loaded = combined
    assert len(loaded) >= 40, f"only {len(loaded)} cases could be combined"
    together = _full(db)
    differing = {k: (together.get(k, ("absent", 0))[1], n) for k, n in alone_sum.items()
                 if together.get(k, ("absent", 0))[1] != n}
    assert not differing, f"(code, table): (all at once, sum of each case alone) {differing}"
    codes = {c.code for c in loaded}
    assert {"REF001", "REF006", "REF007", "REF008", "AMT001", "SDL002", "BUD002"} <= codes


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subset=st.sets(st.sampled_from([r.code for r in ALL_RULES if not r.physical]), min_size=2, max_size=12))
def test_any_subset_gives_each_rule_its_own_result(
        combined: tuple[Database, dict[tuple[str, str], int], list[RuleCase]], subset: set[str]) -> None:
    """Issue 13.1: `check --select S` gives every rule of S the result it has alone."""
    db = combined[0]
    together = _counts(db, sorted(subset))
    for code in subset:
        alone = _alone(db, code)
        assert {k: v for k, v in together.items() if k[0] == code} == alone, code


_ALONE: dict[tuple[str, str], dict[tuple[str, str], tuple[str, int, tuple[str, ...]]]] = {}


def _alone(db: Database, code: str) -> dict[tuple[str, str], tuple[str, int, tuple[str, ...]]]:
    if (db.dbname, code) not in _ALONE:
        _ALONE[(db.dbname, code)] = _counts(db, [code])
    return _ALONE[(db.dbname, code)]


# ---- the pass builder -------------------------------------------------------------------------------------


def _orphan_rule(code: str, alias: str, parent: str, column: str, predicate_alias: str | None = None) -> RowRule:
    named = predicate_alias or alias
    return RowRule(code=code, name=code.lower(), section=4, severity=Severity.HIGH, finds="", why="", example="",
                   repair="", repair_safety=FixSafety.NONE, table="transactions", column=column,
                   predicate=f"t.{column} IS NOT NULL AND {named}.id IS NULL",
                   joins=(Join(alias, parent, f"{alias}.id = t.{column}"),))


def test_the_pass_builder_refuses_two_fragments_that_would_collide() -> None:
    """The shape of issue 13.1: two rules calling different parents `p` may not share one pass."""
    users = _orphan_rule("X001", "p", "users", "user_id")
    goals = _orphan_rule("X002", "p", "goals", "goal_id")
    with pytest.raises(AssertionError, match="collides"):
        pass_joins([users, goals])
    assert pass_joins([users]) == ['LEFT JOIN public."users" p ON p.id = t.user_id']


def test_the_pass_builder_refuses_a_fragment_naming_another_rules_join() -> None:
    stray = _orphan_rule("X003", "x003_p", "goals", "goal_id", predicate_alias="ref001_p")
    with pytest.raises(AssertionError, match="not its own"):
        pass_joins([stray])


def test_every_table_of_the_catalogue_can_be_one_pass() -> None:
    """Every row rule of the catalogue, expanded on the models' schema, merges into its table's pass."""
    schema = schema_from_metadata(metadata)
    by_table: dict[str, list[RowRule]] = {}
    for rule in ALL_RULES:
        expand = FAMILY_OF[rule.code].expand
        concrete = [rule] if rule.table else [r for r in expand(schema) if r.code == rule.code] if expand else []
        for r in concrete:
            if isinstance(r, RowRule) and r.table:
                by_table.setdefault(r.table, []).append(r)
    assert by_table["transactions"] and by_table["habit_completions"]
    for table, rules in by_table.items():
        assert len(pass_joins(rules)) == len({j.alias for r in rules for j in r.joins}), table
