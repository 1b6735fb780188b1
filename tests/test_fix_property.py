"""Property: for any mixture of defects injected into realistic data, applying every safe repair leaves no
repaired rule failing, loses no row (live + archived = before), and `undo` restores every table exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.findings import FixSafety
from mita_integrity.migration import command as migrate
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.undo import undo_run
from mita_integrity.seed import SeedOptions, seed_database

from .conftest import PgServer, template_at
from .dbstate import archived, assert_nothing_lost, checksums, row_counts


def _rows(table: str, n: int, k: int, where: str = "true") -> str:
    return f"(SELECT id FROM {table} WHERE {where} ORDER BY id OFFSET {k} LIMIT {n})"


# Each defect: SQL from (n rows, offset k) over the seeded data; rows are picked by id, so a draw is repeatable.
DEFECTS = {
    "orphan transactions": lambda n, k: f"UPDATE transactions SET user_id = md5(id::text)::uuid "
                                        f"WHERE id IN {_rows('transactions', n, k)}",
    "orphan plan rows": lambda n, k: f"UPDATE daily_plan SET user_id = md5(id::text)::uuid "
                                     f"WHERE id IN {_rows('daily_plan', n, k)}",
    "orphan habits": lambda n, k: f"UPDATE habits SET user_id = md5(id::text)::uuid "
                                  f"WHERE id IN {_rows('habits', n, k)}",
    "orphan moods": lambda n, k: f"UPDATE moods SET user_id = md5(id::text)::uuid WHERE id IN {_rows('moods', n, k)}",
    "duplicate plan rows": lambda n, k: (
        "INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount, daily_budget, created_at) "
        "SELECT md5(id::text || 'dup')::uuid, user_id, date + interval '5 hours', category, planned_amount + 1, "
        f"spent_amount, daily_budget, created_at + interval '1 minute' FROM daily_plan "
        f"WHERE id IN {_rows('daily_plan', n, k)} ON CONFLICT DO NOTHING"),
    "plan dates with a time": lambda n, k: f"UPDATE daily_plan SET date = date + interval '7 hours' "
                                           f"WHERE id IN {_rows('daily_plan', n, k)}",
    "drifted spent": lambda n, k: f"UPDATE daily_plan SET spent_amount = spent_amount + 3.5 "
                                  f"WHERE id IN {_rows('daily_plan', n, k)}",
    "negative spent": lambda n, k: f"UPDATE daily_plan SET spent_amount = -5 WHERE id IN {_rows('daily_plan', n, k)}",
    "unknown goal ids": lambda n, k: "ALTER TABLE transactions DROP CONSTRAINT IF EXISTS fk_transactions_goal_id; "
                                     "UPDATE transactions SET goal_id = md5(id::text)::uuid "
                                     f"WHERE id IN {_rows('transactions', n, k)}",
    "updated before created": lambda n, k: (  # as an import that bypassed the updated_at trigger left them
        "ALTER TABLE transactions DISABLE TRIGGER update_transactions_updated_at; "
        "UPDATE transactions SET updated_at = created_at - interval '1 day' "
        f"WHERE id IN {_rows('transactions', n, k, 'created_at IS NOT NULL')}; "
        "ALTER TABLE transactions ENABLE TRIGGER update_transactions_updated_at"),
    "drifted progress": lambda n, k: "UPDATE goals SET progress = least(progress + 7, 100) "
                                     f"WHERE id IN {_rows('goals', n, k, 'target_amount > 0')}",
    "completed before created": lambda n, k: "UPDATE goals SET completed_at = created_at - interval '1 day' "
                                             f"WHERE id IN {_rows('goals', n, k, 'created_at IS NOT NULL')}",
}

mixtures = st.lists(st.tuples(st.sampled_from(sorted(DEFECTS)), st.integers(1, 6), st.integers(0, 40)),
                    min_size=1, max_size=6)


@pytest.fixture(scope="module")
def seeded_template(pg: PgServer) -> Iterator[str]:
    name = f"mita_tpl_seeded_{uuid.uuid4().hex[:6]}"
    db = pg.create_database(name, template=template_at(pg, migrate.BASELINE))
    with connect(db) as conn:
        seed_database(conn, SeedOptions(users=25, days=20, seed=5))
    yield name
    pg.drop_database(name)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mixture=mixtures)
@example(mixture=[("duplicate plan rows", 1, 0)])  # a keeper merged, then recomputed: undone newest first
def test_safe_repairs_of_any_mixture_pass_lose_nothing_and_undo_exactly(
        pg: PgServer, seeded_template: str, mixture: list[tuple[str, int, int]]) -> None:
    name = f"mita_p_{uuid.uuid4().hex[:12]}"
    db: Database = pg.create_database(name, template=seeded_template)
    try:
        with connect(db) as conn:
            for defect, n, k in mixture:
                conn.execute(DEFECTS[defect](n, k).encode())
            conn.commit()
        before = checksums(db)
        request = FixRequest(batch_size=4)
        outcome = apply_fix(db, plan_fix(db, request), request)
        assert outcome.status == "completed"
        report = run_check(db, CheckRequest())
        assert sorted(r.code for r in report.results if r.failed and r.fix_safety is FixSafety.SAFE) == []
        assert_nothing_lost({t: c for t, (c, _) in before.items()}, row_counts(db), archived(db, outcome.run_id))
        if outcome.changed:  # a draw whose rows do not exist (offset past the end) injects nothing
            undone = undo_run(db, outcome.run_id, batch_size=5)
            assert undone.conflicts == []
        assert checksums(db) == before
    finally:
        pg.drop_database(name)
