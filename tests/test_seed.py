"""The seed: realistic clean data, defects in exactly the announced numbers, same seed → same database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from mita_integrity.check.rules.iso4217 import CODES
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.errors import DatabaseStateError, UsageError
from mita_integrity.migration import command as migrate
from mita_integrity.seed import SeedOptions, SeedResult, seed_database
from mita_integrity.seed.plan import MITA_TABLES

from . import oracle
from .conftest import PgServer, template_at

# Every data rule that can be violated at the baseline schema (the others are ruled out by NOT NULL and FKs).
INJECTED = {
    "NUL001", "NUL004", "NUL006", "NUL008", "REF001", "REF003", "REF004", "REF005", "REF010", "REF011",
    "DUP001", "DUP002", "DUP003", "TIM001", "TIM002", "TIM003", "TIM004", "TIM005", "BUD001",
    "GOL001", "GOL002", "GOL003", "GOL004", "GOL005", "GOL006", "AMT001", "AMT002", "AMT003", "AMT004",
    "AMT005", "AMT006", "SDL002", "USR001", "USR002", "CAL001",
}
NATURAL = {"SDL001", "USR003", "CAL002"}  # information that clean data has too
GROUPS = {"DUP001.groups", "DUP002.groups", "DUP003.groups"}
ANCHOR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def seed(db: Database, **options: object) -> SeedResult:
    with connect(db) as conn:
        return seed_database(conn, SeedOptions(**options))  # type: ignore[arg-type]


def query(db: Database, statement: str) -> list[tuple[object, ...]]:
    with connect(db) as conn:
        return conn.execute(statement).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def second_baseline_db(pg: PgServer) -> Iterator[Database]:
    """Another database cloned from the baseline template."""
    name = f"mita_t_{uuid.uuid4().hex[:12]}"
    db = pg.create_database(name, template=template_at(pg, migrate.BASELINE))
    yield db
    pg.drop_database(name)


@pytest.mark.parametrize(("users", "seed_value"), [(300, 7), (160, 12345)])
def test_truth_is_what_a_naive_query_counts(baseline_db: Database, users: int, seed_value: int) -> None:
    result = seed(baseline_db, users=users, days=30, seed=seed_value, corrupt=True)
    assert set(result.truth) == INJECTED | NATURAL | GROUPS
    assert all(result.truth[code] >= 1 for code in INJECTED), result.truth
    assert all(result.truth[g] >= 2 for g in GROUPS)
    with connect(baseline_db) as conn:
        counts, by_table = oracle.measure(conn)
    wrong = {code: (expected, counts[code]) for code, expected in result.truth.items() if counts[code] != expected}
    assert not wrong, wrong
    assert result.truth_by_table == by_table
    assert set(result.truth_by_table["REF010"]) == {"moods", "push_tokens", "budget_advice", "notification_logs"}
    assert min(result.truth_by_table["REF011"].values()) >= 1


def test_clean_seed_breaks_no_rule(baseline_db: Database) -> None:
    result = seed(baseline_db, users=250, days=30, seed=3)
    assert result.truth == {} and result.truth_by_table == {}
    with connect(baseline_db) as conn:
        counts, _ = oracle.measure(conn)
    broken = {code: n for code, n in counts.items() if n and code not in NATURAL}
    assert not broken, broken
    assert counts["SDL001"] > 0


def test_clean_seed_looks_like_production(baseline_db: Database) -> None:
    result = seed(baseline_db, users=400, days=30, seed=5)
    ((tx, deleted, low, high, users, onboarded),) = query(baseline_db, """
        SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM transactions WHERE deleted_at IS NOT NULL),
               (SELECT min(amount) FROM transactions), (SELECT max(amount) FROM transactions),
               (SELECT count(*) FROM users), (SELECT count(*) FROM users WHERE has_onboarded)""")
    assert result.rows["transactions"] == tx and result.rows["users"] == users == 400
    assert 0.75 * 50 <= tx / users <= 1.25 * 50  # about 50 transactions per user over 30 days
    assert 0.01 <= deleted / tx <= 0.06  # ~3 % soft-deleted
    assert low >= 0.01 and high <= 1_000_000  # type: ignore[operator]
    assert 0.75 <= onboarded / users <= 0.95  # type: ignore[operator]
    ((bad_email, bad_income, bad_zone, bad_currency, no_zone, categories),) = query(baseline_db, """
        SELECT (SELECT count(*) FROM users WHERE email <> lower(email) OR email !~ '^[a-z.]+[0-9]+@[a-z.]+$'),
               (SELECT count(*) FROM users WHERE has_onboarded AND annual_income <> monthly_income * 12),
               (SELECT count(*) FROM users u WHERE timezone IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = u.timezone)),
               (SELECT count(*) FROM transactions t JOIN users u ON u.id = t.user_id WHERE t.currency <> u.currency),
               (SELECT count(*) FROM users WHERE timezone IS NULL),
               (SELECT count(DISTINCT category) FROM transactions)""")
    assert (bad_email, bad_income, bad_zone, bad_currency) == (0, 0, 0, 0)
    assert no_zone > 0 and categories == 9
    assert {r[0] for r in query(baseline_db, "SELECT DISTINCT currency FROM users")} <= CODES
    # Every user-owned table has rows; varchar user ids are users' uuids.
    empty = [t for t in MITA_TABLES if not query(baseline_db, f"SELECT EXISTS (SELECT 1 FROM {t})")[0][0]]
    assert not empty, empty
    assert query(baseline_db, "SELECT count(*) FROM expenses e LEFT JOIN users u ON u.id::text = e.user_id "
                              "WHERE u.id IS NULL") == [(0,)]
    ((created_after_data,),) = query(baseline_db, "SELECT count(*) FROM users u JOIN transactions t "
                                                  "ON t.user_id = u.id WHERE t.spent_at < u.created_at")
    assert created_after_data == 0


def checksums(db: Database) -> dict[str, str]:
    """Gives an order-independent checksum of every MITA table's content."""
    parts = " UNION ALL ".join(
        f"SELECT '{t}', md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM {t} t"
        for t in MITA_TABLES)
    return {str(name): str(value) for name, value in query(db, parts)}


def test_same_seed_gives_the_same_database(baseline_db: Database, second_baseline_db: Database) -> None:
    first = seed(baseline_db, users=120, days=10, seed=42, corrupt=True, anchor=ANCHOR)
    second = seed(second_baseline_db, users=120, days=10, seed=42, corrupt=True, anchor=ANCHOR)
    assert first.truth == second.truth and first.rows == second.rows
    assert checksums(baseline_db) == checksums(second_baseline_db)
    third = seed(second_baseline_db, users=120, days=10, seed=43, corrupt=True, anchor=ANCHOR, replace=True)
    original = checksums(baseline_db)
    differing = {t for t, s in checksums(second_baseline_db).items() if s != original[t]}
    assert {"users", "transactions", "daily_plan", "goals"} <= differing
    assert third.anchor == first.anchor == ANCHOR


def test_refuses_a_database_in_use_unless_replace(baseline_db: Database) -> None:
    seed(baseline_db, users=30, days=3, seed=1)
    with pytest.raises(DatabaseStateError, match="already holds MITA data") as refused:
        seed(baseline_db, users=30, days=3, seed=1)
    assert "--replace" in (refused.value.hint or "")
    result = seed(baseline_db, users=40, days=3, seed=2, replace=True)
    assert query(baseline_db, "SELECT count(*) FROM users") == [(40,)]
    assert result.rows["users"] == 40


def test_refuses_a_database_without_the_schema(empty_db: Database) -> None:
    with pytest.raises(DatabaseStateError, match="no MITA tables") as refused:
        seed(empty_db, users=10)
    assert "migrate upgrade" in (refused.value.hint or "")


def test_refuses_a_database_past_the_baseline(baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        conn.execute("UPDATE integrity.alembic_version SET version_num = '0022_add_missing_fk_constraints'")
    with pytest.raises(DatabaseStateError, match="0022_add_missing_fk_constraints"):
        seed(baseline_db, users=10)


@pytest.mark.parametrize("options", [
    {"users": 0}, {"users": 3_000_000}, {"days": 0}, {"days": 4000}, {"seed": 2**40},
    {"users": 1_000_000, "days": 365},
    {"users": 5, "corrupt": True}, {"users": "10"}, {"anchor": datetime(2026, 1, 1)},
])
def test_bad_options_are_usage_errors(baseline_db: Database, options: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        seed(baseline_db, **options)
    assert query(baseline_db, "SELECT count(*) FROM users") == [(0,)]


def _schema(db: Database) -> list[tuple[object, ...]]:
    return query(db, """
        SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid::regclass::text IN (SELECT tablename FROM pg_tables WHERE schemaname = 'public')
        UNION ALL
        SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace
        UNION ALL
        SELECT 'trigger', tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
         ORDER BY 1, 2""")


def test_indexes_and_constraints_come_back_as_they_were(baseline_db: Database) -> None:
    before = _schema(baseline_db)
    seed(baseline_db, users=60, days=5, seed=9, corrupt=True)
    assert _schema(baseline_db) == before


def test_a_failed_seed_leaves_nothing_behind(baseline_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _schema(baseline_db)
    from mita_integrity.seed import spending

    def broken(run: object) -> None:
        raise psycopg.errors.DiskFull("could not extend file: No space left on device")

    monkeypatch.setattr(spending, "insert_daily_plan", broken)
    with pytest.raises(DatabaseStateError, match="rolled back: could not extend file"):
        seed(baseline_db, users=30, days=3, seed=1, corrupt=True)
    assert _schema(baseline_db) == before
    assert query(baseline_db, "SELECT count(*) FROM users") == [(0,)]


def test_progress_is_reported_stage_by_stage(baseline_db: Database) -> None:
    calls: list[tuple[str, int, int]] = []
    with connect(baseline_db) as conn:
        seed_database(conn, SeedOptions(users=20, days=2, seed=4), progress=lambda *a: calls.append(a))
    dones = [done for _, done, _ in calls]
    assert dones == sorted(dones) and calls[-1][1] == calls[-1][2] and len(calls) >= 8
    assert len({total for _, _, total in calls}) == 1
