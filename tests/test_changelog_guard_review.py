"""Hostile review of the change log's guard (stop 26): ways `check --incremental` could still report less than a
full check through integrity.change_log, its guard or its pruning bound, and what the guard may break. The first
six failed on the guard as first written (five BUD001 false passes, each by DDL made before the base; a recorded
check that could not be recorded); the rest held then and are kept."""

from __future__ import annotations

import psycopg
import pytest

from mita_integrity.database.connection import Database

from .test_incremental import recorded, same_as_full, sql
from .test_incremental_attacks import _balanced, _count, _mask
from .test_incremental_changelog import BUD, assert_full, install_log, logged  # noqa: F401 - logged is a fixture

LOG = "integrity.change_log"


def _moved_away(db: Database) -> tuple[object, int]:
    """A base, then a balanced transaction moved away (its old key only the log names); gives it and BUD001's
    count before the move."""
    recorded(db)
    tx = _balanced(db)
    before = _count(same_as_full(db), "BUD001")
    sql(db, "UPDATE transactions SET category = 'moved-away' WHERE id = %s", (tx,))
    return tx, before


def _masked(db: Database, before: int, reason: str) -> None:
    """A row inserted then updated fills the log's count; BUD001 must still see the key the moved row left."""
    _mask(db)
    inc = same_as_full(db)
    assert _count(inc, "BUD001") > before
    assert_full(inc, reason, BUD)


def _deleted_and_masked(db: Database, tx: object, before: int, reason: str) -> None:
    sql(db, f"DELETE FROM {LOG} WHERE pk = %s", (tx,))
    _masked(db, before, reason)


# ---- what the review found -------------------------------------------------------------------------------------


def test_guard_update_recreated_before_the_base_with_new_table_as_old_rows(logged: Database) -> None:  # noqa: F811
    """SHAPE_SQL checks tgtype, tgqual and tgattr but not tgoldtable/tgnewtable: the UPDATE guard recreated (before
    the base) `REFERENCING NEW TABLE AS old_rows` has the same name, function, body, type and state, yet computes
    the bound from the entries' NEW txid. An entry the base needs, updated to txid 1, then falls below the base
    unseen; a row inserted then updated fills the count: BUD001 false pass. Now tgoldtable/tgnewtable are
    checked."""
    sql(logged, f"DROP TRIGGER mita_integrity_guard_update ON {LOG}; "
                f"CREATE TRIGGER mita_integrity_guard_update AFTER UPDATE ON {LOG} REFERENCING NEW TABLE AS old_rows "
                "FOR EACH STATEMENT EXECUTE FUNCTION integrity.change_log_forgotten(); "
                f"ALTER TABLE {LOG} ENABLE ALWAYS TRIGGER mita_integrity_guard_update")
    tx, before = _moved_away(logged)
    sql(logged, f"UPDATE {LOG} SET txid = '1' WHERE pk = %s", (tx,))
    _mask(logged)
    inc = same_as_full(logged)  # fails here: incremental BUD001 below the full one
    assert _count(inc, "BUD001") > before
    assert_full(inc, "is not enabled ALWAYS on the guard's function", BUD)


def test_log_update_trigger_recreated_before_the_base_with_new_table_as_old_rows(
        logged: Database) -> None:  # noqa: F811
    """Same hole in the logging triggers' shape check (SHAPE_SQL predates the guard, the brief's 'another
    transition-table name'): the log then holds each updated row's NEW key under the same pk, so the count of
    distinct pks is satisfied without any mask and the key the row left is never re-read: BUD001 false pass."""
    sql(logged, "DROP TRIGGER mita_integrity_log_update ON transactions; "
                "CREATE TRIGGER mita_integrity_log_update AFTER UPDATE ON transactions "
                "REFERENCING NEW TABLE AS old_rows FOR EACH STATEMENT "
                "EXECUTE FUNCTION integrity.change_log_transactions(); "
                "ALTER TABLE transactions ENABLE ALWAYS TRIGGER mita_integrity_log_update")
    tx, before = _moved_away(logged)
    inc = same_as_full(logged)
    assert _count(inc, "BUD001") > before
    assert_full(inc, "is not enabled ALWAYS on the log's function", BUD)


def test_guard_function_search_path_altered_before_the_base(logged: Database) -> None:  # noqa: F811
    """The proof checks the guard function's prosrc and prosecdef, not its proconfig: `ALTER FUNCTION ... SET
    search_path` (before the base, so pg_proc's row is old) lets a shadowing max(bigint) decide the bound. The
    module's claim 'a shadowing object cannot change what they write' no longer holds: BUD001 false pass. Now
    proconfig (and the language) are checked."""
    sql(logged, "CREATE SCHEMA evil; "
                "CREATE FUNCTION evil.zero(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE "
                "AS 'SELECT 0::bigint'; "
                "CREATE AGGREGATE evil.max(bigint) (SFUNC = evil.zero, STYPE = bigint, INITCOND = '0'); "
                "ALTER FUNCTION integrity.change_log_forgotten() SET search_path = evil, pg_catalog, pg_temp")
    tx, before = _moved_away(logged)
    _deleted_and_masked(logged, tx, before, "is not enabled ALWAYS on the guard's function")


def test_a_trigger_on_the_pruning_bound_made_before_the_base(logged: Database) -> None:  # noqa: F811
    """The proof rejects any trigger or rule on the log but its guard's, but not on integrity.change_log_pruned,
    where the guard's whole effect lands: a BEFORE INSERT OR UPDATE trigger returning NULL there (made before the
    base) silently voids every bound the guard writes. Not the documented 'DELETE of the bound after the fact':
    a standing object, made once, that the proof could see. BUD001 false pass. Now the bound's own triggers and
    rules are no proof, as the log's."""
    sql(logged, "CREATE FUNCTION public.keep_bound() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RETURN NULL; END$$; "
                "CREATE TRIGGER keep_bound BEFORE INSERT OR UPDATE ON integrity.change_log_pruned "
                "FOR EACH ROW EXECUTE FUNCTION public.keep_bound()")
    tx, before = _moved_away(logged)
    _deleted_and_masked(logged, tx, before, "a trigger, a rule or row security of its own")


# ---- what held ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [
    "merge",
    "cte",
    "returning",
    "replica",
    "view",
    "txid up",
    "txid down",
])
def test_held_deletes_and_edits_the_guard_sees(logged: Database, how: str) -> None:  # noqa: F811
    tx, before = _moved_away(logged)
    if how == "merge":
        sql(logged, f"MERGE INTO {LOG} l USING (SELECT %s::uuid AS pk) s ON l.pk = s.pk WHEN MATCHED THEN DELETE",
            (tx,))
    elif how == "cte":
        sql(logged, f"WITH d AS (DELETE FROM {LOG} WHERE pk = %s RETURNING 1) SELECT count(*) FROM d", (tx,))
    elif how == "returning":
        sql(logged, f"DELETE FROM {LOG} WHERE pk = %s RETURNING *", (tx,))
    elif how == "replica":
        with psycopg.connect(**logged.connect_kwargs()) as conn:
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(f"DELETE FROM {LOG} WHERE pk = %s", (tx,))
    elif how == "view":
        sql(logged, f"CREATE VIEW public.log_view AS SELECT * FROM {LOG}")
        sql(logged, "DELETE FROM public.log_view WHERE pk = %s", (tx,))
    elif how == "txid up":
        sql(logged, f"UPDATE {LOG} SET txid = (txid::text::bigint + 1000000)::text::xid8 WHERE pk = %s", (tx,))
        sql(logged, f"UPDATE {LOG} SET pk = gen_random_uuid() WHERE pk = %s", (tx,))
    elif how == "txid down":
        sql(logged, f"UPDATE {LOG} SET txid = '1' WHERE pk = %s", (tx,))
    _masked(logged, before, "edited or deleted by hand")


def test_held_disable_trigger_all_in_one_transaction(logged: Database) -> None:  # noqa: F811
    tx, before = _moved_away(logged)
    with psycopg.connect(**logged.connect_kwargs()) as conn:
        conn.execute(f"ALTER TABLE {LOG} DISABLE TRIGGER ALL")
        conn.execute(f"DELETE FROM {LOG} WHERE pk = %s", (tx,))
        for name in ("mita_integrity_guard_update", "mita_integrity_guard_delete"):
            conn.execute(f"ALTER TABLE {LOG} ENABLE ALWAYS TRIGGER {name}")
    _masked(logged, before, "changed since the base")


def _touch(db: Database) -> None:
    sql(db, "UPDATE transactions SET amount = amount WHERE id = %s", (_balanced(db),))


def test_held_guard_replaced_or_renamed_before_the_base(logged: Database) -> None:  # noqa: F811
    sql(logged, "CREATE OR REPLACE FUNCTION integrity.change_log_forgotten() RETURNS trigger LANGUAGE plpgsql "
                "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$BEGIN RETURN NULL; END$f$")
    recorded(logged)
    _touch(logged)
    assert_full(same_as_full(logged), "is not enabled ALWAYS on the guard's function", BUD)
    install_log(logged)
    sql(logged, f"ALTER TRIGGER mita_integrity_guard_delete ON {LOG} RENAME TO renamed")
    recorded(logged)
    _touch(logged)
    assert_full(same_as_full(logged), "missing", BUD)
    sql(logged, f"ALTER TRIGGER renamed ON {LOG} RENAME TO mita_integrity_guard_delete")
    assert_full(same_as_full(logged), "changed since the base", BUD)


def test_held_a_row_level_guard_recreated_before_the_base(logged: Database) -> None:  # noqa: F811
    sql(logged, f"DROP TRIGGER mita_integrity_guard_delete ON {LOG}; "
                f"CREATE TRIGGER mita_integrity_guard_delete AFTER DELETE ON {LOG} REFERENCING OLD TABLE AS old_rows "
                "FOR EACH ROW EXECUTE FUNCTION integrity.change_log_forgotten(); "
                f"ALTER TABLE {LOG} ENABLE ALWAYS TRIGGER mita_integrity_guard_delete")
    recorded(logged)
    _touch(logged)
    assert_full(same_as_full(logged), "is not enabled ALWAYS on the guard's function", BUD)


def test_held_a_writer_role_that_is_not_the_owner_deletes(logged: Database) -> None:  # noqa: F811
    """docs/roles.sql's writer has DELETE on the log and INSERT, UPDATE on the bound; an app role with DELETE
    alone on the log is still seen (the guard is SECURITY DEFINER)."""
    sql(logged, "CREATE ROLE app_deleter LOGIN; GRANT USAGE ON SCHEMA integrity TO app_deleter; "
                f"GRANT SELECT, DELETE ON {LOG} TO app_deleter")
    tx, before = _moved_away(logged)
    with psycopg.connect(**logged.connect_kwargs()) as conn:
        conn.execute("SET LOCAL ROLE app_deleter")
        assert conn.execute(f"DELETE FROM {LOG} WHERE pk = %s", (tx,)).rowcount == 1
    _masked(logged, before, "edited or deleted by hand")


def test_held_zero_row_delete_and_remove_then_install(logged: Database) -> None:  # noqa: F811
    from mita_integrity.database.connection import connect
    from mita_integrity.runs import change_log

    recorded(logged)
    sql(logged, f"DELETE FROM {LOG} WHERE false")
    tx = _balanced(logged)
    sql(logged, "UPDATE transactions SET amount = amount WHERE id = %s", (tx,))
    from .test_incremental_changelog import assert_incremental
    assert_incremental(same_as_full(logged))
    with connect(logged) as conn:
        change_log.remove(conn)
        assert change_log.remove(conn)  # idempotent
        change_log.install(conn)
        assert change_log.install(conn)[-1].endswith("already guarded")
    recorded(logged)
    sql(logged, "UPDATE transactions SET category = 'moved-away' WHERE id = %s", (tx,))
    assert_incremental(same_as_full(logged))


def test_an_open_hand_delete_does_not_stop_checks_from_being_recorded(logged: Database) -> None:  # noqa: F811
    """Lesser: the guard makes every statement deleting a log entry take the bound's one row lock until it
    commits. A session left idle in transaction after deleting even a recent entry (which the prune never
    touches) makes the next recorded check's prune wait on that row: lock_timeout (5 s), LockNotAvailable, and
    record() failed as a whole (only InsufficientPrivilege was swallowed around the prune): the run was not
    recorded at all. Now that prune is skipped (the next recorded check prunes)."""
    recorded(logged)
    tx = _balanced(logged)
    sql(logged, "UPDATE transactions SET amount = amount WHERE id = %s", (tx,))  # an entry younger than the base
    with psycopg.connect(**logged.connect_kwargs()) as hand:
        assert hand.execute(f"DELETE FROM {LOG} WHERE pk = %s", (tx,)).rowcount == 1  # left open
        recorded(logged)  # was psycopg.errors.LockNotAvailable: the run not recorded at all
        hand.rollback()


def test_a_second_bound_row_made_possible_before_the_base(logged: Database) -> None:  # noqa: F811
    """Variant of the trigger on the bound (integrity.change_log_pruned's definition is never checked), and
    _log_proof reads the bound with an unordered `SELECT below ... fetchone()`: with its CHECK dropped and `one`
    defaulting to false (before the base), the guard's ON CONFLICT (one) writes a second row, and the proof
    reads the old one first. BUD001 false pass. Now the highest bound is read."""
    sql(logged, "INSERT INTO integrity.change_log_pruned (below) VALUES ('1') ON CONFLICT DO NOTHING")
    [(check,)] = sql(logged, "SELECT conname FROM pg_constraint "
                             "WHERE conrelid = 'integrity.change_log_pruned'::regclass AND contype = 'c'")
    sql(logged, f"ALTER TABLE integrity.change_log_pruned DROP CONSTRAINT {check}, "
                "ALTER COLUMN one SET DEFAULT false")
    tx, before = _moved_away(logged)
    sql(logged, f"DELETE FROM {LOG} WHERE pk = %s", (tx,))
    _mask(logged)
    assert len(sql(logged, "SELECT * FROM integrity.change_log_pruned")) == 2
    inc = same_as_full(logged)
    assert _count(inc, "BUD001") > before
    assert_full(inc, "edited or deleted by hand", BUD)


def test_row_security_on_the_log_is_no_proof(logged: Database) -> None:  # noqa: F811
    """A policy may hide entries from a role that is not the table's owner: the log is then no proof for it."""
    sql(logged, f"ALTER TABLE {LOG} ENABLE ROW LEVEL SECURITY")
    recorded(logged)
    _touch(logged)
    assert_full(same_as_full(logged), "row security of its own", BUD)
