"""Issue 19: the change log of old keys lets BUD001, BUD002 and USR003 re-read only what a change touched; any
doubt about the log (missing, disabled, replaced, bypassed, pruned) runs them in full, with the reason. Every
case compares the incremental check with a full one, result for result."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from mita_integrity.cli.root import run as cli_run
from mita_integrity.database.connection import Database, connect
from mita_integrity.runs import change_log, store

from .test_incremental import (
    MOVE_A_DAY_BACK,
    delete_user,
    how,
    install_trigger,
    move_a_recent_key,
    recorded,
    same_as_full,
    seed,
    sql,
)
from .test_transaction_keys_split import HEAD_SCHEMA  # the schema at head as far as transaction_keys.merges needs it

OLD_KEY_RULES = ("BUD001:daily_plan", "BUD002:transactions", "USR003:users")
BUD = OLD_KEY_RULES[:2]


def install_log(db: Database) -> None:
    with connect(db) as conn:
        store.ensure(conn)
        change_log.install(conn)


def assert_incremental(report: Any) -> None:
    for key in OLD_KEY_RULES:
        assert how(report)[key] == ("incremental", None), (key, how(report)[key])


def assert_full(report: Any, words: str, keys: tuple[str, ...] = OLD_KEY_RULES) -> None:
    for key in keys:
        evaluated, reason = how(report)[key]
        assert evaluated == "full" and words in str(reason), (key, reason)


@pytest.fixture
def logged(baseline_db: Database) -> Database:
    seed(baseline_db, users=50, days=8, seed=5, corrupt=True)
    install_log(baseline_db)
    return baseline_db


def _one_tx(db: Database) -> tuple[Any, Any, Any, Any]:
    [row] = sql(db, "SELECT id, user_id, category, spent_at FROM transactions WHERE deleted_at IS NULL "
                    "AND user_id IS NOT NULL AND spent_at > now() - interval '4 days' ORDER BY id LIMIT 1")
    return row


def test_a_transaction_moved_to_another_day_is_found_by_its_old_key(logged: Database) -> None:
    recorded(logged)
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    inc = same_as_full(logged)
    assert_incremental(inc)


def test_a_transaction_moved_to_another_user_and_category_and_a_plan_row_moved(logged: Database) -> None:
    recorded(logged)
    tx, user, _, _ = _one_tx(logged)
    [(other,)] = sql(logged, "SELECT id FROM users WHERE id <> %s ORDER BY id LIMIT 1", (user,))
    sql(logged, "UPDATE transactions SET user_id = %s, category = 'moved' WHERE id = %s", (other, tx))
    sql(logged, "UPDATE daily_plan SET date = date - interval '1 day' WHERE id = (SELECT min(id::text)::uuid "
                "FROM daily_plan WHERE user_id = %s)", (user,))
    assert_incremental(same_as_full(logged))


def test_hard_deletes_and_soft_deletes(logged: Database) -> None:
    recorded(logged)
    tx, user, _, _ = _one_tx(logged)
    sql(logged, "DELETE FROM transactions WHERE id = %s", (tx,))
    sql(logged, "UPDATE transactions SET deleted_at = now() WHERE user_id = %s AND deleted_at IS NULL", (user,))
    sql(logged, "DELETE FROM daily_plan WHERE id = (SELECT min(id::text)::uuid FROM daily_plan)")
    inc = same_as_full(logged)
    assert_incremental(inc)


def test_a_user_deleted_with_cascades(logged: Database) -> None:
    for table in ("transactions", "daily_plan", "goals"):
        sql(logged, f"ALTER TABLE {table} ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID")
    recorded(logged)
    [(user,)] = sql(logged, "SELECT user_id FROM transactions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    delete_user(logged, user)  # its transactions and plan rows go by the cascade: logged by the triggers too
    assert_incremental(same_as_full(logged))


def test_usr003_a_users_last_transaction_soft_deleted(logged: Database) -> None:
    sql(logged, "UPDATE users SET has_onboarded = true")
    recorded(logged)
    [(user,)] = sql(logged, "SELECT t.user_id FROM transactions t JOIN users u ON u.id = t.user_id "
                            "WHERE t.deleted_at IS NULL GROUP BY 1 ORDER BY count(*), 1 LIMIT 1")
    before = next(r.count for r in same_as_full(logged).results if r.code == "USR003")
    sql(logged, "UPDATE transactions SET deleted_at = now() WHERE user_id = %s", (user,))
    inc = same_as_full(logged)
    assert_incremental(inc)
    assert next(r.count for r in inc.results if r.code == "USR003") == before + 1


def test_a_duplicate_created_then_removed_with_the_log(logged: Database) -> None:
    recorded(logged)
    tx, *_ = _one_tx(logged)
    columns = "user_id, category, amount, spent_at, currency, created_at, updated_at"
    [(copy,)] = sql(logged, f"INSERT INTO transactions (id, {columns}) SELECT gen_random_uuid(), {columns} "
                            "FROM transactions WHERE id = %s RETURNING id", (tx,))
    same_as_full(logged)
    recorded(logged, incremental=True)
    sql(logged, "DELETE FROM transactions WHERE id = %s", (copy,))
    inc = same_as_full(logged)
    assert_incremental(inc)
    assert how(inc)["DUP003:transactions"] == ("incremental", None)


def test_a_trigger_disabled_then_enabled_again_is_a_gap(logged: Database) -> None:
    recorded(logged)
    sql(logged, "ALTER TABLE transactions DISABLE TRIGGER mita_integrity_log_update")
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '2 days' WHERE id = %s", (tx,))
    sql(logged, "ALTER TABLE transactions ENABLE ALWAYS TRIGGER mita_integrity_log_update")
    inc = same_as_full(logged)
    assert_full(inc, "changed since the base")


def test_a_trigger_dropped_or_the_function_replaced(logged: Database) -> None:
    recorded(logged)
    sql(logged, "DROP TRIGGER mita_integrity_log_delete ON daily_plan")
    sql(logged, "DELETE FROM daily_plan WHERE id = (SELECT min(id::text)::uuid FROM daily_plan)")
    assert_full(same_as_full(logged), "missing", BUD)  # USR003 reads no daily_plan: kept
    install_log(logged)
    recorded(logged)
    sql(logged, change_log.function_sql("transactions"))  # CREATE OR REPLACE: the same text, a new catalog row
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    assert_full(same_as_full(logged), "changed since the base")


def test_replica_writes_are_logged_because_the_triggers_fire_always(logged: Database) -> None:
    recorded(logged)
    tx, *_ = _one_tx(logged)
    with psycopg.connect(autocommit=True, **logged.connect_kwargs()) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
        conn.execute("DELETE FROM daily_plan WHERE id = (SELECT min(id::text)::uuid FROM daily_plan)")
    assert_incremental(same_as_full(logged))


def test_a_trigger_enabled_for_origin_only_is_no_proof(logged: Database) -> None:
    sql(logged, "ALTER TABLE daily_plan ENABLE TRIGGER mita_integrity_log_update")  # 'O': replica writes skip it
    recorded(logged)
    with psycopg.connect(autocommit=True, **logged.connect_kwargs()) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE daily_plan SET spent_amount = spent_amount + 3 WHERE id = "
                     "(SELECT min(id::text)::uuid FROM daily_plan)")
    assert_full(same_as_full(logged), "not enabled ALWAYS", BUD)


def never_logged(db: Database, pk: Any = None) -> None:
    """Takes entries (of `pk`, or all) out of the log leaving no trace, as if a write had bypassed the triggers:
    the guard's pruning bound is put back as it was (a deletion by hand is seen by that bound alone)."""
    with psycopg.connect(**db.connect_kwargs()) as conn:
        bound = conn.execute("SELECT below FROM integrity.change_log_pruned").fetchall()
        conn.execute("DELETE FROM integrity.change_log WHERE %(pk)s::uuid IS NULL OR pk = %(pk)s", {"pk": pk})
        conn.execute("DELETE FROM integrity.change_log_pruned")
        if bound:
            conn.execute("INSERT INTO integrity.change_log_pruned (below) VALUES (%s)", bound[0])


def test_log_entries_lost_are_seen_by_the_count(logged: Database) -> None:
    """The count is the proof's second line: a write the log missed, its bound untouched, is still seen."""
    recorded(logged)
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    never_logged(logged)
    assert_full(same_as_full(logged), "a write bypassed it")


def test_without_the_log_the_old_key_rules_run_in_full_and_say_how_to_install_it(baseline_db: Database) -> None:
    seed(baseline_db, users=30, days=6, seed=5, corrupt=True)
    recorded(baseline_db)
    tx, *_ = _one_tx(baseline_db)
    sql(baseline_db, "DELETE FROM transactions WHERE id = %s", (tx,))
    assert_full(same_as_full(baseline_db), "changelog install")


def test_a_pruned_log_and_a_base_older_than_the_horizon(logged: Database) -> None:
    old = recorded(logged)
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    # the old base ages past the horizon; a newer base (other options) prunes what only the old one needed
    sql(logged, "UPDATE integrity.runs SET started_at = started_at - interval '8 days' WHERE id = %s", (old.run_id,))
    recorded(logged, sample=3)
    assert sql(logged, "SELECT count(*) FROM integrity.change_log")[0][0] == 0
    inc = same_as_full(logged, max_base_age_s=30 * 86400)
    assert inc.base_run == old.run_id
    assert_full(inc, "pruned past the base")


def test_pruning_keeps_what_a_usable_base_needs(logged: Database) -> None:
    recorded(logged)
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    recorded(logged, sample=3)  # another base; the first is still usable: its entries stay
    assert sql(logged, "SELECT count(*) FROM integrity.change_log")[0][0] == 1
    assert_incremental(same_as_full(logged))


def test_with_the_0025_trigger_a_plan_row_whose_transactions_moved(baseline_db: Database) -> None:
    seed(baseline_db, users=30, days=8, seed=5)
    install_trigger(baseline_db)
    install_log(baseline_db)
    recorded(baseline_db)
    user, category, day = move_a_recent_key(baseline_db)
    assert_incremental(same_as_full(baseline_db))
    recorded(baseline_db, incremental=True)
    with psycopg.connect(autocommit=True, **baseline_db.connect_kwargs()) as conn:  # 0025's trigger bypassed
        conn.execute("SET session_replication_role = replica")
        conn.execute(MOVE_A_DAY_BACK, (user, category, day - timedelta(days=1)))
    inc = same_as_full(baseline_db)
    assert_incremental(inc)
    assert next(r for r in inc.results if r.code == "BUD001").count > 0


def test_the_command_installs_reports_and_removes(logged: Database, db_url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(["--db", db_url, "changelog", "status"]) == 0
    out = capsys.readouterr().out
    assert "change log: installed" in out
    assert "integrity.change_log (its guard): update enabled always, delete enabled always" in out
    assert cli_run(["--db", db_url, "changelog", "install"]) == 0
    out = capsys.readouterr().out
    assert "public.transactions: already logged" in out and "integrity.change_log: already guarded" in out
    assert cli_run(["--db", db_url, "changelog", "remove"]) == 0
    capsys.readouterr()
    assert cli_run(["--db", db_url, "changelog", "status", "--format", "json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["installed"] is False and state["guard"] == {"update": None, "delete": None}
    assert sql(logged, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'integrity'::regnamespace")[0][0] == 0
    assert cli_run(["--db", db_url, "changelog", "status"]) == 0
    assert "not installed" in capsys.readouterr().out
    sql(logged, "ALTER TABLE transactions ALTER COLUMN user_id TYPE text")
    assert cli_run(["--db", db_url, "changelog", "install"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: the change log cannot be installed: public.transactions.user_id is text")
    assert len(err.strip().splitlines()) == 1


def test_a_log_installed_before_its_guard_falls_back_until_installed_again(logged: Database, db_url: str,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A log installed by an earlier version has no guard: not proof (an entry deleted by hand would not be seen);
    `changelog install` adds the guard alone, and the bases recorded after it use the log."""
    sql(logged, "DROP TRIGGER mita_integrity_guard_update ON integrity.change_log; "
                "DROP TRIGGER mita_integrity_guard_delete ON integrity.change_log; "
                "DROP FUNCTION integrity.change_log_forgotten()")
    assert cli_run(["--db", db_url, "changelog", "status"]) == 0
    out = capsys.readouterr().out
    assert "change log: not installed" in out and "(its guard): update missing, delete missing" in out
    recorded(logged)
    tx, *_ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    assert_full(same_as_full(logged), "its guard mita_integrity_guard_update on the log itself is missing")
    assert cli_run(["--db", db_url, "changelog", "install"]) == 0
    out = capsys.readouterr().out
    assert "public.transactions: already logged" in out and "integrity.change_log: triggers" in out
    recorded(logged, incremental=True)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE id = %s", (tx,))
    assert_incremental(same_as_full(logged))


def test_user_timezone_days_read_whole_user_category_sets_and_a_zone_change_falls_back(logged: Database) -> None:
    sql(logged, "UPDATE users SET timezone = CASE WHEN abs(hashtext(id::text)) % 2 = 0 THEN 'Pacific/Kiritimati' "
                "ELSE 'America/Los_Angeles' END")
    recorded(logged, day_boundary="user-timezone")
    tx, user, _, _ = _one_tx(logged)
    sql(logged, "UPDATE transactions SET spent_at = spent_at - interval '13 hours' WHERE id = %s", (tx,))
    assert_incremental(same_as_full(logged, day_boundary="user-timezone"))
    recorded(logged, day_boundary="user-timezone", incremental=True)
    sql(logged, "UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = %s", (user,))  # its days move, no row does
    inc = same_as_full(logged, day_boundary="user-timezone")
    assert_full(inc, "users changed", BUD)


def test_install_waits_briefly_for_its_lock_and_gives_up_in_one_line(baseline_db: Database, db_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    seed(baseline_db, users=5, days=2, seed=5)
    monkeypatch.setattr(change_log, "LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(change_log, "ATTEMPTS", 2)
    with psycopg.connect(**baseline_db.connect_kwargs()) as writer:  # an application transaction left open
        writer.execute("UPDATE transactions SET amount = amount WHERE id = (SELECT min(id::text)::uuid "
                       "FROM transactions)")
        assert cli_run(["--db", db_url, "changelog", "install"]) == 3
        err = capsys.readouterr().err
        assert "could not get its lock in 2 tries of 200 ms" in err and len(err.strip().splitlines()) == 1
        writer.rollback()
    with connect(baseline_db) as conn:  # nothing was left behind on the table it could not lock
        cur = conn.cursor()
        state = change_log.status(cur)
    assert state.triggers["transactions"] == {"update": None, "delete": None}


def test_at_head_the_merge_reads_the_changed_keys_as_the_full_check(baseline_db: Database) -> None:
    """With the plan rows unique per key the budget statement meets them by a merge (transaction_keys.merges);
    restricted to the keys a change touched, it still agrees with the full check."""
    from mita_integrity.check.rules import transaction_keys
    from mita_integrity.check.rules.context import CheckContext, CheckOptions, load_schema

    seed(baseline_db, users=50, days=8, seed=5, corrupt=True)
    sql(baseline_db, HEAD_SCHEMA)
    install_log(baseline_db)
    with connect(baseline_db) as conn:
        cur = conn.cursor()
        assert transaction_keys.merges(CheckContext(cur, load_schema(cur), CheckOptions()),
                                       frozenset({"BUD001", "BUD002"}))
    recorded(baseline_db)
    tx, user, _, _ = _one_tx(baseline_db)
    sql(baseline_db, "UPDATE transactions SET spent_at = spent_at - interval '1 day', amount = amount + 1 "
                     "WHERE id = %s", (tx,))
    sql(baseline_db, "UPDATE daily_plan SET spent_amount = spent_amount + 5 WHERE id = (SELECT min(id::text)::uuid "
                     "FROM daily_plan WHERE user_id = %s)", (user,))
    sql(baseline_db, "INSERT INTO transactions (id, user_id, category, amount, spent_at) "
                     "VALUES (gen_random_uuid(), %s, 'new', 0.005, now() - interval '1 day')", (user,))
    inc = same_as_full(baseline_db)
    assert_incremental(inc)
    assert {r.code: r.count for r in inc.results if r.code in ("BUD001", "BUD002")}["BUD002"] >= 1


def test_a_base_kept_on_two_connections_is_the_one_kept_on_one(logged: Database) -> None:
    """What a recorded run keeps is read on both connections of its snapshot (the biggest reads first): every
    table's rows and young xmins and every rule's violating keys are those one connection reads."""
    from mita_integrity.check.run import CheckRequest, run_check

    kept = {}
    for parallel in (False, True):
        report = run_check(logged, CheckRequest(keep_base=True, parallel=parallel))
        assert report.kept is not None
        kept[parallel] = ({t: (s.rows, s.young) for t, s in report.kept.tables.items()},
                          {k: (r.count, None if v is None else sorted(v)) for k, (r, v) in report.kept.results.items()})
        reads = {p.connection for p in report.passes if p.name.startswith("keep:")}
        assert reads == ({1, 2} if parallel else {1}), [(p.name, p.connection) for p in report.passes]
    assert kept[True] == kept[False]
    violators = {k: v for k, (_, v) in kept[True][1].items() if v}
    assert {"REF001", "USR003", "BUD001", "DUP003"} <= {code for code, _ in violators}, sorted(violators)
