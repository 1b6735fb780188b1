"""Issue 19: the keys a change touched, read in one statement for BUD001, BUD002, DUP002 and DUP003 (split over
two connections), and the row rules' base violators kept without reading them when the change log vouches for
them. Every case compares the incremental check with a full one."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest

from mita_integrity.check.incremental import Change, row_reads
from mita_integrity.check.incremental import touched_keys as incremental_keys
from mita_integrity.check.rules.context import planner_settings
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database

from .test_incremental import how, outcome, recorded, same_as_full, seed, sql
from .test_incremental_changelog import install_log
from .test_incremental_property import apply

# Orderly samples (the first keys in key order, or the smallest ids): the same in any check that is exact.
ORDERED = ("BUD001", "BUD002", "DUP002")
MIXTURE = [("amount", 3, 1), ("day", 8, 2), ("category", 13, 1), ("soft_delete", 21, 0), ("hard_delete", 34, 0),
           ("duplicate", 55, 0), ("plan_drift", 89, 2), ("plan_delete", 144, 0), ("plan_duplicate", 233, 0),
           ("move_user", 377, 5), ("insert", 610, 7), ("undelete", 987, 0), ("replica", 1597, 3)]


@pytest.fixture
def logged(baseline_db: Database) -> Database:
    seed(baseline_db, users=60, days=6, seed=11, corrupt=True)
    install_log(baseline_db)
    return baseline_db


def samples(report: Any) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(r.code, r.table): r.sample for r in report.results if r.code in ORDERED}


@pytest.mark.parametrize("boundary", ["utc", "user-timezone"])
def test_two_connections_read_the_keys_in_halves_with_the_full_checks_results(logged: Database,
                                                                                boundary: str) -> None:
    recorded(logged, day_boundary=boundary)
    for op in MIXTURE:
        apply(logged, op)
    inc = run_check(logged, CheckRequest(incremental=True, day_boundary=boundary))  # two connections
    full = run_check(logged, CheckRequest(parallel=False, day_boundary=boundary))
    assert outcome(inc) == outcome(full)
    assert samples(inc) == samples(full)
    for key in ("BUD001:daily_plan", "BUD002:transactions", "DUP002:daily_plan", "DUP003:transactions"):
        assert how(inc)[key] == ("incremental", None), (key, how(inc)[key])
    halves = {p.name: p.connection for p in inc.passes if p.name.startswith("incremental:keys[")}
    assert set(halves) == {"incremental:keys[1/2]", "incremental:keys[2/2]"}, halves


def test_the_duplicate_rules_alone_read_their_keys_without_the_log(baseline_db: Database) -> None:
    seed(baseline_db, users=40, days=6, seed=3, corrupt=True)
    recorded(baseline_db)
    for op in MIXTURE:
        apply(baseline_db, op)
    inc = same_as_full(baseline_db)
    assert how(inc)["DUP002:daily_plan"] == ("incremental", None)
    assert how(inc)["DUP003:transactions"] == ("incremental", None)
    assert how(inc)["BUD001:daily_plan"][0] == "full"  # no log: BUD001 cannot know the keys rows left


def test_unlogged_base_violators_are_kept_and_logged_ones_read_again(logged: Database) -> None:
    """SDL001 (soft-deleted transactions), AMT003 (negative spending): the log names the rows that changed or
    went; every other base violator is unchanged and keeps its verdict without being read."""
    recorded(logged)
    before = {(r.code, r.table): r.count for r in run_check(logged, CheckRequest(parallel=False)).results}
    [(gone,)] = sql(logged, "SELECT id FROM transactions WHERE deleted_at IS NOT NULL ORDER BY id LIMIT 1")
    sql(logged, "DELETE FROM transactions WHERE id = %s", (gone,))  # a base violator hard-deleted
    [(mended,)] = sql(logged, "SELECT id FROM transactions WHERE amount < 0 AND deleted_at IS NULL "
                              "AND coalesce(lower(category), '') NOT IN ('income', 'refund', 'transfer') "
                              "ORDER BY id LIMIT 1")
    sql(logged, "UPDATE transactions SET amount = 4 WHERE id = %s", (mended,))  # a base violator mended
    sql(logged, "UPDATE transactions SET deleted_at = now() WHERE id = (SELECT id FROM transactions "
                "WHERE deleted_at IS NULL ORDER BY id DESC LIMIT 1)")  # a new violator
    inc = same_as_full(logged)
    counts = {(r.code, r.table): r.count for r in inc.results}
    assert counts[("SDL001", "transactions")] == before[("SDL001", "transactions")]  # one went, one came
    assert counts[("AMT003", "transactions")] == before[("AMT003", "transactions")] - 1
    for key in ("SDL001:transactions", "AMT003:transactions"):
        assert how(inc)[key] == ("incremental", None)


def test_a_parent_that_came_back_mends_an_unchanged_orphan_even_with_the_log(logged: Database) -> None:
    recorded(logged)
    [(orphan_user,)] = sql(logged, "SELECT t.user_id FROM transactions t LEFT JOIN users u ON u.id = t.user_id "
                                   "WHERE u.id IS NULL AND t.user_id IS NOT NULL LIMIT 1")
    sql(logged, "INSERT INTO users (id, email, password_hash) VALUES (%s, 'back@example.com', 'h')", (orphan_user,))
    sql(logged, "DELETE FROM transactions WHERE id = (SELECT id FROM transactions ORDER BY id LIMIT 1)")
    inc = same_as_full(logged)
    assert how(inc)["REF001:transactions"] == ("incremental", None)


def test_halves_keep_users_whole_in_key_order_and_null_users_last() -> None:
    day = date(2026, 1, 1)
    keys = [("b", day, "x"), ("a", day, "x"), ("b", day, None), ("c", None, "y"), (None, day, "z"), ("a", day, "y")]
    ordered = sorted((k for k in keys if k[0] is not None), key=lambda k: k[0]) + [k for k in keys if k[0] is None]
    runs = incremental_keys.halves(ordered, 2)
    assert len(runs) == 2 and sum(len(r) for r in runs) == len(keys)
    first_users = {k[0] for k in runs[0]}
    assert not first_users & {k[0] for k in runs[1]}  # no user in both
    assert all(u is not None and u < k[0] for u in first_users for k in runs[1] if k[0] is not None)
    assert runs[1][-1][0] is None
    assert incremental_keys.halves(ordered, 1) == [ordered] and incremental_keys.halves([], 2) == []


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_changed_rows_read_by_tid_scan_or_as_the_planner_likes_give_the_full_checks_results(
        logged: Database, monkeypatch: pytest.MonkeyPatch, share: float) -> None:
    """TID_SHARE 1.0: every read of the changed rows by their tids is forced to a Tid Scan; 0.0: never."""
    monkeypatch.setattr(row_reads, "TID_SHARE", share)
    recorded(logged)
    for op in MIXTURE:
        apply(logged, op)
    inc = same_as_full(logged)
    assert how(inc)["AMT003:transactions"] == ("incremental", None)


def test_a_few_changed_rows_are_read_by_a_tid_scan_and_the_settings_are_put_back(logged: Database) -> None:
    tids = [r[0] for r in sql(logged, "SELECT ctid::text FROM transactions ORDER BY ctid LIMIT 3")]
    [(rows,)] = sql(logged, "SELECT count(*) FROM transactions")
    few = Change(changed=3, lost=0, rows=rows, tids=tuple(tids))
    assert row_reads._by_tid(few) == row_reads._TID_SCAN
    many = Change(changed=3, lost=0, rows=20, tids=tuple(tids))  # 15 % of the table: planner's choice
    assert row_reads._by_tid(many) == ()
    with psycopg.connect(**logged.connect_kwargs()) as conn, conn.cursor() as cur:
        with planner_settings(cur, row_reads._by_tid(few)):
            # the shape of _restricted's read: the table, a rule's LEFT JOIN to its parent
            cur.execute("EXPLAIN SELECT t.id FROM public.transactions t "
                        "LEFT JOIN public.users p ON p.id = t.user_id WHERE t.ctid = ANY(%s::tid[])", (tids,))
            plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("SELECT current_setting('enable_seqscan'), current_setting('enable_indexscan'), "
                    "current_setting('enable_bitmapscan')")
        assert cur.fetchone() == ("on", "on", "on")
    assert "Tid Scan on transactions t" in plan, plan


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_hot_updates_a_parent_that_came_back_and_both_connections_agree_with_the_full_check(
        baseline_db: Database, monkeypatch: pytest.MonkeyPatch, share: float) -> None:
    """Forced Tid Scan (1.0) or the planner's choice (0.0): HOT updates (same page, new tid), a base violator
    updated (its new version among the tids, excluded from the base branch), an orphan whose parent came back
    (REF001 under the forced settings: users only gained a row), on one connection and on two."""
    monkeypatch.setattr(row_reads, "TID_SHARE", share)
    seed(baseline_db, users=30, days=4, seed=5, corrupt=True)
    recorded(baseline_db)
    sql(baseline_db, "UPDATE transactions SET amount = -amount WHERE id IN "
                     "(SELECT id FROM transactions WHERE deleted_at IS NULL ORDER BY id LIMIT 3)")  # HOT, AMT003
    sql(baseline_db, "UPDATE transactions SET amount = 5 WHERE id = (SELECT id FROM transactions "
                     "WHERE amount < 0 AND deleted_at IS NULL ORDER BY id DESC LIMIT 1)")  # a base violator mended
    orphans = sql(baseline_db, "SELECT DISTINCT t.user_id FROM transactions t LEFT JOIN users u ON u.id = t.user_id "
                               "WHERE u.id IS NULL AND t.user_id IS NOT NULL ORDER BY 1 LIMIT 1")
    assert orphans
    for (user,) in orphans:
        sql(baseline_db, "INSERT INTO users (id, email, password_hash) VALUES (%s, 'back@example.com', 'h')", (user,))
        # changed, and no longer an orphan
        sql(baseline_db, "UPDATE transactions SET amount = amount WHERE user_id = %s", (user,))
    inc = same_as_full(baseline_db)
    assert how(inc)["AMT003:transactions"] == ("incremental", None)
    assert how(inc)["REF001:transactions"] == ("incremental", None)
    two = run_check(baseline_db, CheckRequest(incremental=True))
    assert outcome(two) == outcome(inc)
