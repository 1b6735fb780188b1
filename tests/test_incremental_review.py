"""Issue 19, hostile review: cases where `check --incremental` could give what a full check would not."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from mita_integrity.check import incremental
from mita_integrity.check.incremental import changes, runner
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database

from .test_incremental import how, outcome, recorded, same_as_full, seed, sql


@pytest.fixture
def dirty(baseline_db: Database) -> Database:
    seed(baseline_db, users=60, days=8, seed=3, corrupt=True)
    return baseline_db


def burn_xids(db: Database, n: int) -> None:
    """Other sessions' transactions: the server hands out n transaction ids."""
    with psycopg.connect(autocommit=True, **db.connect_kwargs()) as conn:
        for _ in range(n):
            conn.execute("SELECT txid_current()")


def test_the_second_connection_counts_ages_from_its_own_point_and_must_not_miss_a_change(
        dirty: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """age() counts from a point fixed at a transaction's first call: the helper's point is later than the main
    connection's when other sessions wrote in between, so a window measured on one connection is too small on
    the other, and a row written just after the base looked unchanged there."""
    recorded(dirty)
    for table in ("transactions", "daily_plan", "goals", "users"):  # whichever connection scans which table
        sql(dirty, f"UPDATE {table} SET id = id WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT 1)")
    sql(dirty, "UPDATE transactions SET amount = -amount - 1 WHERE id IN "
               "(SELECT id FROM transactions WHERE amount > 0 ORDER BY id LIMIT 5)")
    sql(dirty, "UPDATE daily_plan SET spent_amount = spent_amount + 7 WHERE id IN "
               "(SELECT id FROM daily_plan ORDER BY id LIMIT 5)")
    window = changes._window

    def busy(cur: Any, base_xmin: int) -> int:  # a busy server: other sessions take ids meanwhile
        out = window(cur, base_xmin)
        burn_xids(dirty, 40)
        return out

    change = changes._change

    def slow(*args: Any) -> Any:  # each table's scan takes a while, so the helper (burning ids above) gets tables
        time.sleep(0.3)
        return change(*args)

    for module in (changes, runner):  # where it is called
        monkeypatch.setattr(module, "_window", busy)
    monkeypatch.setattr(changes, "_change", slow)
    inc = run_check(dirty, CheckRequest(incremental=True))  # two connections
    full = run_check(dirty, CheckRequest(parallel=False))
    assert inc.mode == "incremental"
    assert {p.connection for p in inc.passes if p.name.startswith("changes:")} == {1, 2}
    assert outcome(inc) == outcome(full), {k: (v, outcome(full).get(k)) for k, v in outcome(inc).items()
                                           if outcome(full).get(k) != v}


def test_a_primary_key_moved_to_other_columns_runs_that_tables_rules_in_full(dirty: Database) -> None:
    """The base keeps its violators by the text of the primary key: once the key is other columns (no rewrite,
    no column changed), that text names no row, and the base's unchanged violators were silently dropped."""
    sql(dirty, "ALTER TABLE transactions ALTER COLUMN created_at SET NOT NULL")  # before the base: same columns
    recorded(dirty)
    before = next(r for r in recorded(dirty).results if r.code == "AMT003")
    assert before.count > 0
    [(pkey,)] = sql(dirty, "SELECT conname FROM pg_constraint WHERE conrelid = 'transactions'::regclass "
                           "AND contype = 'p'")
    sql(dirty, f'ALTER TABLE transactions DROP CONSTRAINT "{pkey}" CASCADE, ADD PRIMARY KEY (id, created_at)')
    sql(dirty, "UPDATE transactions SET category = category WHERE id IN (SELECT id FROM transactions "
               "WHERE amount > 0 ORDER BY id LIMIT 1)")  # one changed row: the rule is re-read, not kept
    inc = same_as_full(dirty)
    assert inc.mode == "incremental"
    assert how(inc)["AMT003:transactions"][0] == "full"


def test_rows_written_under_a_savepoint_of_a_transaction_in_flight_at_the_base(dirty: Database) -> None:
    with psycopg.connect(**dirty.connect_kwargs()) as conn:
        conn.execute("SELECT txid_current()")  # it has its id before the base is taken: the base's xmin
        conn.execute("UPDATE goals SET saved_amount = -2 WHERE id IN (SELECT id FROM goals ORDER BY id LIMIT 2)")
        conn.execute("SAVEPOINT s1")
        conn.execute("UPDATE transactions SET amount = -5 WHERE id IN (SELECT id FROM transactions "
                     "WHERE amount > 0 ORDER BY id LIMIT 3)")
        conn.execute("SAVEPOINT s2")
        conn.execute("DELETE FROM users WHERE id IN (SELECT u.id FROM users u WHERE NOT EXISTS "
                     "(SELECT 1 FROM goals g WHERE g.user_id = u.id) AND NOT EXISTS (SELECT 1 FROM daily_plan p "
                     "WHERE p.user_id = u.id) ORDER BY id LIMIT 1)")
        conn.execute("RELEASE SAVEPOINT s2")
        [(xid,)] = conn.execute("SELECT txid_current()").fetchall()
        base = recorded(dirty)  # the writes are in flight: the base does not see them
        [(base_xmin,)] = sql(dirty, "SELECT snap_xmin FROM integrity.check_bases WHERE run_id = %s", (base.run_id,))
        assert base_xmin == xid  # the boundary: a row version whose xmin is the base's xmin itself
        conn.commit()
    inc = same_as_full(dirty)
    assert inc.mode == "incremental" and inc.base_run == base.run_id
    inc2 = run_check(dirty, CheckRequest(incremental=True))  # and on two connections
    assert outcome(inc2) == outcome(inc)


def test_a_change_frozen_by_vacuum_freeze_is_still_seen(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "UPDATE transactions SET amount = -9 WHERE id IN (SELECT id FROM transactions "
               "WHERE amount > 0 ORDER BY id LIMIT 4)")
    sql(dirty, "VACUUM (FREEZE) transactions")
    inc = same_as_full(dirty)
    assert inc.mode == "incremental" and how(inc)["AMT003:transactions"] == ("incremental", None)


def test_a_table_dropped_and_created_again_under_its_name(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "CREATE TABLE goals_copy AS SELECT * FROM goals")
    sql(dirty, "DROP TABLE goals CASCADE")
    sql(dirty, "ALTER TABLE goals_copy RENAME TO goals")
    sql(dirty, "ALTER TABLE goals ADD PRIMARY KEY (id)")
    sql(dirty, "UPDATE goals SET saved_amount = -1 WHERE id IN (SELECT id FROM goals ORDER BY id LIMIT 2)")
    inc = same_as_full(dirty)
    assert how(inc)["GOL004:goals"][0] == "full"


def test_truncate_and_the_same_rows_again_in_one_transaction(dirty: Database) -> None:
    recorded(dirty)
    with psycopg.connect(**dirty.connect_kwargs()) as conn:
        conn.execute("CREATE TEMP TABLE keep AS SELECT * FROM goals")
        conn.execute("UPDATE keep SET saved_amount = -3 WHERE id IN (SELECT id FROM keep ORDER BY id LIMIT 2)")
        conn.execute("TRUNCATE goals CASCADE")
        conn.execute("INSERT INTO goals SELECT * FROM keep")
    inc = same_as_full(dirty)
    assert how(inc)["GOL004:goals"][0] == "full"


def test_a_kept_result_shows_no_more_sample_rows_than_sample_asks(dirty: Database) -> None:
    recorded(dirty)  # --sample 10
    inc = run_check(dirty, CheckRequest(incremental=True, parallel=False, sample=2))
    full = run_check(dirty, CheckRequest(parallel=False, sample=2))
    assert {(r.code, r.table): len(r.sample) for r in inc.results} == \
        {(r.code, r.table): len(r.sample) for r in full.results}


def test_a_base_with_a_smaller_sample_is_not_kept_for_a_larger_one(dirty: Database) -> None:
    recorded(dirty, sample=1)
    inc = run_check(dirty, CheckRequest(incremental=True, parallel=False, sample=5))
    full = run_check(dirty, CheckRequest(parallel=False, sample=5))
    assert {(r.code, r.table): len(r.sample) for r in inc.results} == \
        {(r.code, r.table): len(r.sample) for r in full.results}


def test_a_prepared_transaction_committed_after_the_base(dirty: Database) -> None:
    [(allowed,)] = sql(dirty, "SELECT current_setting('max_prepared_transactions')::int")
    if not allowed:
        pytest.skip("max_prepared_transactions = 0 on this server")
    with psycopg.connect(autocommit=True, **dirty.connect_kwargs()) as conn:
        conn.execute("BEGIN")
        conn.execute("UPDATE goals SET saved_amount = -4 WHERE id IN (SELECT id FROM goals ORDER BY id LIMIT 2)")
        conn.execute("PREPARE TRANSACTION 'r19'")
    recorded(dirty)
    sql(dirty, "COMMIT PREPARED 'r19'")
    same_as_full(dirty)


def test_the_clock_past_midnight_utc_runs_the_budget_rules_in_full(dirty: Database) -> None:
    base = recorded(dirty)
    sql(dirty, "UPDATE integrity.check_base_results SET count = count + 1000 WHERE run_id = %s "
               "AND code IN ('BUD001', 'BUD002')", (base.run_id,))  # what the window gave on the base's day
    sql(dirty, "UPDATE integrity.check_bases SET utc_date = utc_date - 1 WHERE run_id = %s", (base.run_id,))
    inc = same_as_full(dirty)
    assert inc.mode == "incremental"
    assert how(inc)["BUD001:daily_plan"][0] == "full" and "another day" in str(how(inc)["BUD001:daily_plan"][1])


def test_a_future_transaction_that_time_overtook_is_no_longer_counted(dirty: Database) -> None:
    import time

    sql(dirty, "INSERT INTO transactions (id, user_id, category, amount, spent_at, currency, created_at, updated_at) "
               "SELECT gen_random_uuid(), id, 'food', 5, now() + interval '1 day 3 seconds', 'USD', now(), now() "
               "FROM users ORDER BY id LIMIT 2")
    before = next(r for r in recorded(dirty).results if r.code == "TIM003")
    time.sleep(4)
    inc = same_as_full(dirty)
    after = next(r for r in inc.results if r.code == "TIM003")
    assert after.evaluated == "incremental" and after.count == before.count - 2


def test_transaction_ids_lower_than_the_bases_mean_a_full_run(dirty: Database) -> None:
    base = recorded(dirty)
    sql(dirty, "UPDATE integrity.check_bases SET snap_xmin = snap_xmin + 1000000, snap_xmax = snap_xmax + 1000000 "
               "WHERE run_id = %s", (base.run_id,))  # a dump restored where ids are lower
    inc = same_as_full(dirty)
    assert inc.mode == "full" and "transaction ids went back" in str(how(inc)["DUP003:transactions"][1])


def test_a_per_table_statistics_reset_and_a_reinsert_that_evens_the_count(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "DELETE FROM goals WHERE id IN (SELECT id FROM goals WHERE saved_amount >= 0 ORDER BY id LIMIT 1)")
    sql(dirty, "INSERT INTO goals SELECT (jsonb_populate_record(g, jsonb_build_object('id', gen_random_uuid(), "
               "'saved_amount', -1))).* FROM goals g ORDER BY id LIMIT 1")  # the same number of rows, one new defect
    sql(dirty, "SELECT pg_stat_reset_single_table_counters('goals'::regclass)")
    inc = same_as_full(dirty)  # the server marks the database's statistics reset too: a full run
    assert how(inc)["GOL004:goals"][0] == "full"


def test_a_parent_soft_deleted_and_undeleted(dirty: Database) -> None:
    recorded(dirty)
    sql(dirty, "UPDATE goals SET deleted_at = now() WHERE id IN (SELECT goal_id FROM transactions "
               "WHERE goal_id IS NOT NULL ORDER BY id LIMIT 2)")
    inc = same_as_full(dirty)
    assert how(inc)["SDL002:transactions"][0] == "full"
    recorded(dirty, incremental=True)
    sql(dirty, "UPDATE goals SET deleted_at = NULL WHERE deleted_at IS NOT NULL")
    same_as_full(dirty)


def test_two_recorded_incremental_checks_at_once(dirty: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    recorded(dirty)
    sql(dirty, "UPDATE transactions SET amount = -1 WHERE id IN (SELECT id FROM transactions ORDER BY id LIMIT 2)")
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: recorded(dirty, incremental=True), range(2)))
    assert {r.mode for r in runs} == {"incremental"}
    assert sql(dirty, "SELECT count(*) FROM integrity.check_bases") == [(3,)]
    same_as_full(dirty)


def test_a_role_that_may_not_write_the_base_still_records_the_run(dirty: Database) -> None:
    from mita_integrity.runs.findings_history import record

    recorded(dirty)  # the tables exist
    sql(dirty, "DROP ROLE IF EXISTS r19_writer")
    sql(dirty, "CREATE ROLE r19_writer LOGIN")
    try:
        sql(dirty, "GRANT USAGE ON SCHEMA integrity TO r19_writer")
        sql(dirty, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integrity TO r19_writer")
        sql(dirty, "REVOKE INSERT ON integrity.check_bases, integrity.check_base_results FROM r19_writer")
        sql(dirty, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO r19_writer")
        report = run_check(dirty, CheckRequest(keep_base=True, parallel=False))
        with psycopg.connect(**dirty.connect_kwargs()) as conn:
            conn.execute("SET ROLE r19_writer")
            record(conn, report)
        assert sql(dirty, "SELECT count(*) FROM integrity.runs WHERE id = %s", (report.run_id,)) == [(1,)]
        assert sql(dirty, "SELECT count(*) FROM integrity.check_bases WHERE run_id = %s", (report.run_id,)) == [(0,)]
        inc = same_as_full(dirty)
        assert inc.mode == "incremental" and inc.base_run != report.run_id  # the older base
    finally:
        sql(dirty, "DROP OWNED BY r19_writer")
        sql(dirty, "DROP ROLE r19_writer")


def test_the_catalogue_fingerprint_covers_the_currency_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """AMT001 tests currencies against iso4217.py (AMT001's list, in check/rules/): another list, another catalogue."""
    from pathlib import Path

    before = incremental.catalogue_fingerprint()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: real(self) + (b"\n# XTS added" if self.name == "iso4217.py" else b""))
    assert incremental.catalogue_fingerprint() != before


def test_a_table_without_a_primary_key_and_one_with_a_composite_key(dirty: Database) -> None:
    [(pkey,)] = sql(dirty, "SELECT conname FROM pg_constraint WHERE conrelid = 'goals'::regclass AND contype = 'p'")
    sql(dirty, f'ALTER TABLE goals DROP CONSTRAINT "{pkey}" CASCADE')
    sql(dirty, "ALTER TABLE transactions ALTER COLUMN created_at SET NOT NULL")
    [(pkey,)] = sql(dirty, "SELECT conname FROM pg_constraint WHERE conrelid = 'transactions'::regclass "
                           "AND contype = 'p'")
    sql(dirty, f'ALTER TABLE transactions DROP CONSTRAINT "{pkey}" CASCADE, ADD PRIMARY KEY (created_at, id)')
    recorded(dirty)
    sql(dirty, "UPDATE goals SET saved_amount = -6 WHERE id IN (SELECT id FROM goals ORDER BY id LIMIT 2)")
    sql(dirty, "UPDATE transactions SET amount = -6, category = 'x\"y, (z)' WHERE id IN "
               "(SELECT id FROM transactions ORDER BY id LIMIT 2)")
    inc = same_as_full(dirty)
    assert how(inc)["GOL004:goals"] == ("full", "the base run kept no keys for it")
    assert how(inc)["AMT003:transactions"] == ("incremental", None)


def test_more_base_violators_than_a_lookup_is_worth(dirty: Database) -> None:
    sql(dirty, "INSERT INTO transactions SELECT (jsonb_populate_record(t, jsonb_build_object('id', "
               "gen_random_uuid(), 'amount', -1, 'category', 'food'))).* FROM transactions t "
               "CROSS JOIN generate_series(1, 1100) WHERE t.id = (SELECT min(id::text)::uuid FROM transactions)")
    recorded(dirty)
    sql(dirty, "UPDATE transactions SET amount = 3 WHERE id IN (SELECT id FROM transactions ORDER BY id LIMIT 3)")
    inc = same_as_full(dirty)
    assert how(inc)["AMT003:transactions"][0] == "full"


def test_a_row_level_security_policy_loosened_after_the_base(dirty: Database) -> None:
    """A role under row-level security reads the rows a policy lets it: a policy changed since the base shows
    unchanged rows that no xmin marks as new (nor a count as lost)."""
    from mita_integrity.runs.findings_history import record

    sql(dirty, "UPDATE goals SET saved_amount = -1 WHERE id IN (SELECT id FROM goals ORDER BY id LIMIT 3)")
    recorded(dirty)  # the integrity tables exist
    sql(dirty, "DROP ROLE IF EXISTS r19_rls")
    sql(dirty, "CREATE ROLE r19_rls")
    try:
        for grant in ("USAGE ON SCHEMA public, integrity", "SELECT ON ALL TABLES IN SCHEMA public",
                      "SELECT ON ALL TABLES IN SCHEMA integrity"):
            sql(dirty, f"GRANT {grant} TO r19_rls")
        sql(dirty, "ALTER TABLE goals ENABLE ROW LEVEL SECURITY")
        sql(dirty, "CREATE POLICY r19_some ON goals FOR SELECT TO r19_rls USING (saved_amount >= 0)")
        reader = Database(dirty.parsed.__class__(params={**dirty.parsed.params, "options": "-c role=r19_rls"},
                                                 dropped=dirty.parsed.dropped), dirty.origin)
        base = run_check(reader, CheckRequest(keep_base=True, parallel=False))
        with psycopg.connect(**dirty.connect_kwargs()) as conn:
            record(conn, base)
        assert next(r for r in base.results if r.code == "GOL004").count == 0
        sql(dirty, "ALTER POLICY r19_some ON goals USING (true)")
        inc = run_check(reader, CheckRequest(incremental=True, parallel=False))
        full = run_check(reader, CheckRequest(parallel=False))
        assert inc.base_run == base.run_id and "row-level security" in str(how(inc)["GOL004:goals"][1])
        assert outcome(inc) == outcome(full), {k: (v, outcome(full).get(k)) for k, v in outcome(inc).items()
                                               if outcome(full).get(k) != v}
    finally:
        sql(dirty, "DROP POLICY IF EXISTS r19_some ON goals")
        sql(dirty, "ALTER TABLE goals DISABLE ROW LEVEL SECURITY")
        sql(dirty, "DROP OWNED BY r19_rls")
        sql(dirty, "DROP ROLE r19_rls")
