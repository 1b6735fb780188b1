"""The change log as proof of the keys rows left (BUD001, BUD002, USR003): whether it can be trusted since a
base, USR003's re-read of the users it names, and the violating keys a recorded run keeps for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.sql

from ...runs.check_bases import Base
from ..rule_registry import BY_CODE
from ..rules.base import Rule, rel
from ..rules.context import CheckContext, Outcome
from .changes import Change
from .statements import _array, _guarded
from .written_since import changed_sql


def _log_proof(cur: psycopg.Cursor[Any], base: Base, window: int, changes: dict[str, Change | str]) -> str | None:
    """Gives why the change log cannot be trusted to hold every old key since the base, or None when it can.

    It can when its triggers (both events, both tables) exist, are enabled ALWAYS, call the log's functions,
    and their pg_trigger rows and the functions' pg_proc rows are older than the base (a DROP, a DISABLE then
    ENABLE or a CREATE OR REPLACE writes a new catalog row, whose xmin is then younger: a gap is possible);
    when the log's guard (its own triggers, the same way) is there and no pruning went past the base's xmin
    (the guard raises that bound above any entry edited or deleted by hand); and when, per table, the distinct
    primary keys logged since the base are at least the base rows updated or deleted since (`lost`, counted
    from the rows themselves): a row the log missed is a row counted lost and not logged.
    """
    from ...runs import change_log

    cur.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                (change_log.LOG, change_log.PRUNED))
    row = cur.fetchone()
    if not row or not row[0]:
        return "it is not installed (mita-integrity changelog install)"
    # The logging triggers, then the log's guard: an entry edited or deleted since the base raised the pruning
    # bound, read below. Without the guard (or with a gap in it) such an entry could be masked in the count at
    # the end by the keys of rows inserted since and then updated. A body replaced before the base is no proof.
    expected = change_log.expected_triggers()
    cur.execute("""SELECT x.relation, x.name, t.tgenabled::text, age(t.xmin) > %(w)s AND age(p.xmin) > %(w)s,
                          t.tgfoid = to_regprocedure(x.function) AND p.prosrc = x.body AND """
                + change_log.SHAPE_SQL + """
                     FROM unnest(%(relations)s::text[], %(names)s::text[], %(functions)s::text[], %(bodies)s::text[])
                          AS x(relation, name, function, body)
                     JOIN pg_trigger t ON t.tgrelid = to_regclass(x.relation) AND t.tgname = x.name
                     JOIN pg_proc p ON p.oid = t.tgfoid""",
                {"w": window, "relations": [e.relation for e in expected], "names": [e.name for e in expected],
                 "functions": [e.function for e in expected], "bodies": [e.body for e in expected]})
    found = {(relation, name): (state, old, own) for relation, name, state, old, own in cur.fetchall()}
    for trigger in expected:
        if (trigger.relation, trigger.name) not in found:
            return f"its {trigger.said} is missing (mita-integrity changelog install)"
        state, old, own = found[(trigger.relation, trigger.name)]
        if state != "A" or not own:
            return f"its {trigger.said} is not enabled ALWAYS on {trigger.owner} function"
        if not old:
            return f"its {trigger.said} (or its function) changed since the base"
    # A TRUNCATE (or a rename, a rewrite) of the log or of its pruning bound writes its pg_class row anew: entries
    # (or the bound) may be gone, and the count below cannot see it when rows inserted since were updated too
    # (their keys fill the count). A trigger or rule of their own, but the guard's (one dropping some entries, or
    # voiding the bounds the guard writes, made before the base), or row security hiding rows from this role, is
    # no proof either.
    cur.execute("SELECT bool_and(age(c.xmin) > %s AND NOT c.relrowsecurity "
                "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname <> ALL(%s)) "
                "AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid)) AND count(*) = 2 "
                "FROM pg_class c WHERE c.oid IN (to_regclass(%s), to_regclass(%s))",
                (window, [change_log.guard_name(e) for e in change_log.EVENTS], change_log.LOG, change_log.PRUNED))
    kept = cur.fetchone()
    if not kept or not kept[0]:
        return ("the log itself (or its pruning bound) was truncated or altered since the base, or has a trigger, "
                "a rule or row security of its own")
    # A logical replication subscription's apply worker fires row triggers only, never statement triggers
    # (PostgreSQL's docs, "Logical Replication: Architecture"): what it applies is not logged, and the count
    # below cannot see a missing entry when rows inserted since were updated too. Any subscription of this
    # database is no proof (one dropped since the base is not seen: the note in docs/incremental.md).
    cur.execute("SELECT count(*) FROM pg_catalog.pg_subscription s WHERE s.subdbid = "
                "(SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())")
    subscribed = cur.fetchone()
    if subscribed and int(subscribed[0]):
        return ("this database has a logical replication subscription, whose writes fire no statement trigger "
                "(they are not logged)")
    cur.execute(f"SELECT max(below::text::bigint) FROM {change_log.PRUNED}")  # one row, unless altered: the highest
    pruned = cur.fetchone()
    if pruned and pruned[0] is not None and int(pruned[0]) > base.kept.xmin:
        return ("it was pruned past the base (a base older than the pruning horizon), or entries the base needs "
                "were edited or deleted by hand")
    cur.execute(f"SELECT tbl::text, count(DISTINCT pk) FROM {change_log.LOG} WHERE txid >= %s::text::xid8 GROUP BY 1",
                (str(base.kept.xmin),))
    logged = {tbl: int(n) for tbl, n in cur.fetchall()}
    for table, (letter, _) in change_log.LOGGED.items():
        change = changes.get(table)
        if not isinstance(change, Change):
            continue  # the rules reading it run in full anyway, with that table's reason
        if logged.get(letter, 0) < change.lost:
            return (f"{change.lost} base rows of {table} were updated or deleted since the base, but it holds "
                    f"{logged.get(letter, 0)} (a write bypassed it)")
    return None


def _log_installed(cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether the change log's triggers are all there and enabled ALWAYS (a base then keeps the keys of
    the rules that need it; without the log they would be of no use)."""
    from ...runs import change_log

    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (change_log.LOG,))
    row = cur.fetchone()
    return bool(row and row[0]) and change_log.status(cur).installed


def _old_key_rules(ctx: CheckContext, rules: Sequence[Rule], base: Base, window: int,
                   changes: dict[str, Change | str] | None = None) -> dict[str, tuple[Outcome, list[str]]]:
    """Gives USR003's outcome and violators, re-reading only the affected users: the users written since, the
    old user of every logged transaction (a user that lost one), and the base's violators
    (BUD001 and BUD002, which need the log too, are touched_keys'). The sample, like the full one's, is any
    --sample of its violators.
    """
    from ...runs.change_log import LOG
    from ..rules.users import usr003_where

    cur = ctx.cur
    since = str(base.kept.xmin)
    codes = {r.code for r in rules}
    out: dict[str, tuple[Outcome, list[str]]] = {}
    n = ctx.options.sample
    if "USR003" in codes:
        typ = ctx.schema.columns["users"]["id"][0]
        # A user gaining a live transaction can only stop violating, and the base's violators are read anyway:
        # the users of the transactions written since are not needed, only those a transaction left (the log).
        parts = [f"SELECT user_id::text FROM {LOG} WHERE tbl = 't' AND txid >= %(x)s::text::xid8"]
        ids: set[str] = set()
        change = (changes or {}).get("users")
        if isinstance(change, Change) and change.tids is not None:  # as the changes scan collected them
            ids.update(str(row[0]) for row in change.carried if row[0] is not None)
        else:
            parts.append(f"SELECT t.id::text FROM {rel('users')} t WHERE {changed_sql(window)}")
        cur.execute(" UNION ".join(parts), {"x": since})
        ids |= {r[0] for r in cur.fetchall() if r[0] is not None} | set(base.kept.results[("USR003", "users")][1] or ())
        listed_ids = _array(ctx, sorted(ids), "text")
        where = f"{usr003_where(ctx)} AND t.id IN (SELECT CAST(k AS {typ}) FROM unnest({listed_ids}) k)"
        cur.execute(f"SELECT t.id::text FROM {rel('users')} t WHERE {where}")
        violators = [r[0] for r in cur.fetchall()]
        out["USR003"] = (Outcome("USR003", "users", len(violators), sample=tuple(violators[:n])), violators)
    return out


def _old_key_members(ctx: CheckContext, codes: Sequence[str]) -> dict[str, list[str]]:
    """Gives the violating keys of BUD001/BUD002 (JSON (user_id, day, category) triples) and USR003 (user ids), read in
    full, for a recorded run whose next incremental check may use the change log (a rule whose read failed is
    left out: the next check runs it in full)."""
    from ..rules import transaction_keys
    from ..rules.users import usr003_where

    out: dict[str, list[str]] = {}
    if "USR003" in codes:
        rows = _guarded(ctx, f"SELECT t.id::text FROM {rel('users')} t WHERE {usr003_where(ctx)}", [BY_CODE["USR003"]])
        if rows is not None:
            out["USR003"] = [r[0] for r in rows]
    bud = frozenset(codes) & {"BUD001", "BUD002"}
    if bud:
        # As the engine runs the statement (transaction_keys.evaluate): streams, no hash grouping, put back after.
        statement = transaction_keys.shared_sql(ctx, bud, within=lambda branch, table: "true").replace("%(n)s", "0")
        with transaction_keys.streamed(ctx.cur):
            rows = _guarded(ctx, statement, [BY_CODE[c] for c in sorted(bud)])
        if rows is not None:
            for code, i in (("BUD001", 10), ("BUD002", 11)):
                if code in bud:
                    out[code] = list(rows[0][i] or ())
    return out
