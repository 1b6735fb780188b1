"""The change log of old keys: what `check --incremental` needs to find the group a row left.

An update's old row version and a deleted row are invisible to a later snapshot, so BUD001, BUD002 and
USR003 cannot tell which (user, category) or which user lost a row since the base. `mita-integrity changelog
install` adds, on public.transactions and public.daily_plan, statement-level AFTER UPDATE and AFTER DELETE
triggers (a trigger with a transition table takes one event) that copy each old row's key into
integrity.change_log (schema step 3): the writing transaction's top-level id, the table, the primary key,
user_id, the day-defining timestamp (spent_at, date) and category. Nothing else is kept.

- ENABLE ALWAYS: a session under session_replication_role = replica (a restore) is logged too. Not the apply
  worker of a logical replication subscription: it fires row triggers only, never a statement trigger (PostgreSQL
  docs, logical replication architecture), so a database with a subscription never trusts the log
  (check/incremental/).
- The functions are SECURITY DEFINER with search_path pinned to pg_catalog, pg_temp: the application's role
  needs no grant on the integrity schema, and a shadowing object cannot change what they write.
- Installing and removing take the tables' SHARE ROW EXCLUSIVE lock (CREATE TRIGGER, ALTER TABLE) for a
  moment: each table is done in its own short transaction with lock_timeout, tried again a few times, so
  the application's writes never queue long behind it.

- The log guards itself: statement-level AFTER UPDATE and AFTER DELETE triggers on integrity.change_log (also
  installed by `changelog install`) raise the remembered pruning bound (integrity.change_log_pruned) above every
  entry a statement edited or deleted. An entry deleted by hand is then an entry "pruned": a base that could
  have needed it no longer trusts the log (before, a hand-made DELETE could be masked in the count that proves
  the log complete by rows inserted since the base and then updated, whose keys are logged too). The tool's own
  pruning goes through the same triggers, harmlessly: it deletes below the bound it then records.

Whether the log can be trusted for a given base is check/incremental/'s question (old_keys.py) (proven, or the rules
that need old keys run in full); pruning is `prune`'s: a recorded check deletes what every usable base can
already see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from ..database.connection import transaction
from ..database.errors import DatabaseStateError

SCHEMA = "integrity"
LOG = f"{SCHEMA}.change_log"
PRUNED = f"{SCHEMA}.change_log_pruned"
# table -> (its letter in the log, the column defining the day)
LOGGED: dict[str, tuple[str, str]] = {"transactions": ("t", "spent_at"), "daily_plan": ("p", "date")}
EVENTS = ("update", "delete")
GUARD_FUNCTION = f"{SCHEMA}.change_log_forgotten"
LOCK_TIMEOUT_MS = 2_000
ATTEMPTS = 5
PRUNE_HORIZON_S = 7 * 86400  # check --incremental's default --max-base-age: older bases fall back, with the reason
# What the log's columns hold, per source column: the types it copies without a cast that could fail.
COLUMN_TYPES = {"id": ("uuid",), "user_id": ("uuid",),
                "spent_at": ("timestamp with time zone",), "date": ("timestamp with time zone",),
                "category": ("text", "character varying")}


# A trigger of the log's own shape (the logging triggers and the guard's), on pg_trigger t calling pg_proc p: AFTER
# <its event> FOR EACH STATEMENT, no WHEN condition, no column list (a trigger of that name recreated otherwise
# fires for some statements only), its transition table the OLD rows (review: one recreated REFERENCING NEW TABLE
# AS old_rows logs the keys rows went to); the function SECURITY DEFINER in plpgsql with the search_path it was
# made with (review: ALTER FUNCTION ... SET search_path lets a shadowing max() or INSERT target decide).
SEARCH_PATH = "pg_catalog, pg_temp"
SHAPE_SQL = ("t.tgtype = CASE WHEN t.tgname IN ('mita_integrity_log_update', 'mita_integrity_guard_update') "
             "THEN 16 ELSE 8 END AND t.tgqual IS NULL AND coalesce(array_length(t.tgattr::int2[], 1), 0) = 0 "
             "AND t.tgoldtable IS NOT DISTINCT FROM 'old_rows'::name AND t.tgnewtable IS NULL "
             "AND p.prosecdef AND p.prolang = (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'plpgsql') "
             f"AND p.proconfig IS NOT DISTINCT FROM ARRAY['search_path={SEARCH_PATH}']::text[]")


def trigger_name(event: str) -> str:
    return f"mita_integrity_log_{event}"


def guard_name(event: str) -> str:
    """The trigger on the log itself that remembers an edit or a deletion of its entries as a pruning bound."""
    return f"mita_integrity_guard_{event}"


# The guard's function: the bound becomes one above the greatest txid among the entries a statement took away or
# changed (an UPDATE's old rows: what the entry said). No entry taken, nothing written.
GUARD_BODY = f"""
BEGIN
    INSERT INTO {PRUNED} (below)
    SELECT (max(o.txid::text::bigint) + 1)::text::xid8 FROM old_rows o HAVING count(*) > 0
    ON CONFLICT (one) DO UPDATE SET below = greatest({PRUNED}.below, excluded.below);
    RETURN NULL;
END
"""


def function_name(table: str) -> str:
    return f"{SCHEMA}.change_log_{table}"


def function_body(table: str) -> str:
    """Gives the body of the trigger function of `table` (pg_proc.prosrc holds it as written)."""
    letter, day = LOGGED[table]
    return f"""
BEGIN
    INSERT INTO {LOG} (tbl, pk, user_id, at, category)
    SELECT '{letter}', o.id, o.user_id, o.{day}, o.category FROM old_rows o;
    RETURN NULL;
END
"""


def function_sql(table: str) -> str:
    """Gives the trigger function copying the old keys of `table`'s transition table into the log."""
    return _definer(function_name(table), function_body(table))


@dataclass(frozen=True)
class Expected:
    """One trigger the log needs: where, its name, the function it calls (and that function's body), and how a
    fallback reason names it."""

    relation: str
    name: str
    function: str
    body: str
    said: str  # "trigger mita_integrity_log_update on transactions"
    owner: str  # whose function it must call: "the log's", "the guard's"


def expected_triggers() -> list[Expected]:
    """Gives every trigger the log needs: the logging ones on the tables, then its guard's on the log itself."""
    out = [Expected(f"public.{table}", trigger_name(e), f"{function_name(table)}()", function_body(table),
                    f"trigger {trigger_name(e)} on {table}", "the log's")
           for table in LOGGED for e in EVENTS]
    return out + [Expected(LOG, guard_name(e), f"{GUARD_FUNCTION}()", GUARD_BODY,
                           f"guard {guard_name(e)} on the log itself", "the guard's") for e in EVENTS]


def _definer(name: str, body: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $f${body}$f$"""


def _triggers_sql(on: str, names: dict[str, str], function: str) -> list[str]:
    """Gives the statements (re)creating one trigger per event on `on`, of the log's shape, ENABLE ALWAYS."""
    statements = []
    for event in EVENTS:
        statements += [f"DROP TRIGGER IF EXISTS {names[event]} ON {on}",
                       f"CREATE TRIGGER {names[event]} AFTER {event.upper()} ON {on} "
                       f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
                       f"ALTER TABLE {on} ENABLE ALWAYS TRIGGER {names[event]}"]
    return statements


@dataclass(frozen=True)
class Status:
    """Where the log stands: per table its triggers' states (None: missing), its guard's, and the log's size."""

    triggers: dict[str, dict[str, str | None]]  # table -> event -> tgenabled
    guard: dict[str, str | None]  # event -> tgenabled, of the triggers on the log itself
    entries: int
    bytes: int
    pruned_below: int | None

    @property
    def installed(self) -> bool:
        states = [*(state for events in self.triggers.values() for state in events.values()), *self.guard.values()]
        return all(state == "A" for state in states)


def status(cur: psycopg.Cursor[Any]) -> Status:
    """Reads the triggers' states and the log's size (the log absent: no entries)."""
    cur.execute("""SELECT c.relname, t.tgname, t.tgenabled::text FROM pg_trigger t
                     JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND c.relname = ANY(%s) AND t.tgname = ANY(%s)""",
                (list(LOGGED), [trigger_name(e) for e in EVENTS]))
    found = {(table, name): state for table, name, state in cur.fetchall()}
    triggers = {table: {e: found.get((table, trigger_name(e))) for e in EVENTS} for table in LOGGED}
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (LOG,))
    row = cur.fetchone()
    entries = size = 0
    below = None
    guard: dict[str, str | None] = {e: None for e in EVENTS}
    if row and row[0]:
        cur.execute("SELECT t.tgname, t.tgenabled::text FROM pg_trigger t WHERE t.tgrelid = to_regclass(%s) "
                    "AND t.tgname = ANY(%s)", (LOG, [guard_name(e) for e in EVENTS]))
        named = dict(cur.fetchall())
        guard = {e: named.get(guard_name(e)) for e in EVENTS}
        cur.execute(f"SELECT count(*), pg_total_relation_size('{LOG}'), "
                    f"(SELECT max(below::text::bigint) FROM {PRUNED}) FROM {LOG}")
        counted = cur.fetchone()
        assert counted is not None
        entries, size, below = int(counted[0]), int(counted[1]), counted[2]
    return Status(triggers, guard, entries, size, None if below is None else int(below))


def _columns(cur: psycopg.Cursor[Any], table: str) -> dict[str, str]:
    cur.execute("""SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a
                    WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped""",
                (f"public.{table}",))
    return {name: typ for name, typ in cur.fetchall()}


def _locked(conn: psycopg.Connection[Any], label: str, statements: list[str]) -> None:
    """Runs statements in one short transaction with lock_timeout, tried again when the lock is not granted."""
    for attempt in range(ATTEMPTS):
        try:
            with transaction(conn, lock_timeout_ms=LOCK_TIMEOUT_MS, statement_timeout_ms=60_000) as cur:
                for statement in statements:
                    cur.execute(statement.encode())
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == ATTEMPTS - 1:
                raise DatabaseStateError(
                    f"{label}: could not get its lock in {ATTEMPTS} tries of {LOCK_TIMEOUT_MS} ms (long transactions "
                    "on the table); nothing was changed for it",
                    "try again when the application is quieter") from None
            time.sleep(0.5 * (attempt + 1))


def refuse_columns(cur: psycopg.Cursor[Any]) -> None:
    """Raises one clear error when a column the triggers copy is missing or of another type (run before anything
    is created: the integrity schema too)."""
    problems = []
    for table, (_, day) in LOGGED.items():
        columns = _columns(cur, table)
        if not columns:
            problems.append(f"public.{table} is missing")
        for column in ("id", "user_id", day, "category"):
            if columns and columns.get(column) not in COLUMN_TYPES[column]:
                problems.append(f"public.{table}.{column} is {columns.get(column) or 'missing'}, "
                                f"not {' or '.join(COLUMN_TYPES[column])}")
    if problems:
        raise DatabaseStateError(f"the change log cannot be installed: {problems[0]}; nothing was changed",
                                 "it copies those columns as they are (a failing trigger fails the app's writes)")


def install(conn: psycopg.Connection[Any]) -> list[str]:
    """Installs (or re-installs) the triggers; gives what was done. The integrity schema must be at step 3."""
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (LOG,))
        row = cur.fetchone()
        if not row or not row[0]:
            raise DatabaseStateError(f"{LOG} is missing (the integrity schema is older); nothing was changed",
                                     "run any recording command first (check --record), or as the tables' owner")
        refuse_columns(cur)
        before = status(cur)
        ours = {table: _ours(cur, f"public.{table}", trigger_name, function_name(table), function_body(table))
                for table in LOGGED}
        guarded = _ours(cur, LOG, guard_name, GUARD_FUNCTION, GUARD_BODY)
    done = []
    for table in LOGGED:
        states = before.triggers[table]
        if all(states[e] == "A" for e in EVENTS) and ours[table]:
            done.append(f"public.{table}: already logged")
            continue
        names = {e: trigger_name(e) for e in EVENTS}
        _locked(conn, f"public.{table}",
                [function_sql(table), *_triggers_sql(f"public.{table}", names, function_name(table))])
        done.append(f"public.{table}: triggers {', '.join(names.values())} installed (ENABLE ALWAYS)")
    if all(before.guard[e] == "A" for e in EVENTS) and guarded:
        done.append(f"{LOG}: already guarded")
    else:
        names = {e: guard_name(e) for e in EVENTS}
        _locked(conn, LOG, [_definer(GUARD_FUNCTION, GUARD_BODY), *_triggers_sql(LOG, names, GUARD_FUNCTION)])
        done.append(f"{LOG}: triggers {', '.join(names.values())} installed (an entry edited or deleted by hand "
                    "is then seen)")
    return done


def _ours(cur: psycopg.Cursor[Any], on: str, name: Callable[[str], str], function: str, body: str) -> bool:
    """Tells whether every trigger `name(event)` on `on` is of the log's shape and calls `function` as installed
    (a function replaced in place, say by a body that logs nothing, leaves the triggers enabled)."""
    cur.execute(f"SELECT coalesce(bool_and(t.tgfoid = p.oid AND p.prosrc = %s AND {SHAPE_SQL}), false) "
                "FROM pg_trigger t JOIN pg_proc p ON p.oid = to_regprocedure(%s) "
                "WHERE t.tgrelid = to_regclass(%s) AND t.tgname = ANY(%s)",
                (body, f"{function}()", on, [name(e) for e in EVENTS]))
    row = cur.fetchone()
    return bool(row and row[0])


def remove(conn: psycopg.Connection[Any]) -> list[str]:
    """Drops the triggers and their functions, and empties the log; gives what was done."""
    done = []
    with transaction(conn, read_only=True) as cur:
        before = status(cur)
    for table in LOGGED:
        if any(before.triggers[table][e] is not None for e in EVENTS):
            _locked(conn, f"public.{table}", [f"DROP TRIGGER IF EXISTS {trigger_name(e)} ON public.{table}"
                                              for e in EVENTS])
            done.append(f"public.{table}: triggers dropped")
    with transaction(conn, lock_timeout_ms=LOCK_TIMEOUT_MS, statement_timeout_ms=60_000) as cur:
        for table in LOGGED:
            cur.execute(f"DROP FUNCTION IF EXISTS {function_name(table)}()")
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (LOG,))
        row = cur.fetchone()
        if row and row[0]:
            for event in EVENTS:
                cur.execute(f"DROP TRIGGER IF EXISTS {guard_name(event)} ON {LOG}")
            cur.execute(f"TRUNCATE {LOG}")
            done.append(f"{LOG}: emptied")
        cur.execute(f"DROP FUNCTION IF EXISTS {GUARD_FUNCTION}()")
    return done or ["nothing was installed"]


def prune(cur: psycopg.Cursor[Any], horizon_s: int) -> int:
    """Deletes the entries every usable base can already see; gives how many.

    A base can see the changes of every transaction below its snapshot's xmin, so an entry whose txid is below
    the smallest xmin of the recorded bases younger than `horizon_s` (the default --max-base-age) is of use to
    none of them. The bound is remembered (integrity.change_log_pruned): an older base that an incremental
    check is asked to start from (a longer --max-base-age) finds its entries may be gone and runs the rules
    that need old keys in full.
    """
    cur.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL", (LOG, PRUNED))
    row = cur.fetchone()
    if not row or not row[0]:
        return 0
    cur.execute(f"""SELECT min(b.snap_xmin) FROM {SCHEMA}.check_bases b JOIN {SCHEMA}.runs r ON r.id = b.run_id
                     WHERE r.status = 'completed' AND r.started_at >= now() - make_interval(secs => %s)""",
                (horizon_s,))
    found = cur.fetchone()
    if not found or found[0] is None:
        return 0
    below = int(found[0])
    cur.execute(f"DELETE FROM {LOG} WHERE txid < %s::text::xid8", (str(below),))
    deleted = cur.rowcount
    cur.execute(f"""INSERT INTO {PRUNED} (below) VALUES (%(b)s::text::xid8)
                    ON CONFLICT (one) DO UPDATE SET below = greatest({PRUNED}.below, excluded.below)""",
                {"b": str(below)})
    return int(deleted)
