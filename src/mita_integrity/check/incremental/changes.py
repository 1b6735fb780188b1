"""How the changes since a base are found: per table one scan of its row versions' xmin (the rows written
since, how many base rows were lost), the tables' states, and the reasons a whole run cannot be incremental.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
import psycopg.sql

from ...runs.check_bases import Base, TableState
from .. import engine
from ..rules.base import rel
from ..rules.context import CheckContext
from ..rules.dayboundary import plan_day_sql
from .statements import _on_connections, _timing
from .written_since import changed_sql

MAX_BASE_AGE_S = 7 * 86400


XID_MARGIN = 2**31 - 50_000_000  # a base older than this in xids is refused (wraparound distance)


_MASK = 2**32 - 1


def _now(cur: psycopg.Cursor[Any]) -> tuple[str, int, int, int, datetime | None, date]:
    cur.execute("""SELECT pg_current_snapshot()::text, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                          pg_snapshot_xmax(pg_current_snapshot())::text::bigint, d.oid::bigint, s.stats_reset,
                          (now() AT TIME ZONE 'UTC')::date
                     FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
                    WHERE d.datname = current_database()""")
    row = cur.fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], row[5]


State = tuple[int, int, str, tuple[int, int, int], str]


def _states(cur: psycopg.Cursor[Any], tables: Sequence[str]) -> dict[str, State]:
    """Gives per table (oid, relfilenode, relkind, counters, shape); a table with children is marked 'c', one
    under row-level security for this role 's'."""
    cur.execute("""SELECT c.relname, c.oid::bigint, c.relfilenode::bigint,
                          CASE WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) THEN 'c'
                               -- a policy decides which rows this role reads, and can change without a row
                               WHEN c.relkind = 'r' AND row_security_active(c.oid) THEN 's'
                               ELSE c.relkind::text END,
                          coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0),
                          (SELECT md5(string_agg(concat_ws(':', a.attnum, a.attname, a.atttypid, a.atttypmod,
                                                           a.attnotnull, a.attisdropped, a.atthasmissing,
                                                           a.attmissingval::text, a.attcollation), ','
                                                 ORDER BY a.attnum))
                             FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0)
                          -- the primary key's columns: the base names its violators by the key's text
                          || coalesce('/' || (SELECT i.indkey::text FROM pg_index i
                                               WHERE i.indrelid = c.oid AND i.indisprimary), '')
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                    WHERE n.nspname = 'public' AND c.relname = ANY(%s)""", (list(tables),))
    return {name: (int(oid), int(node), kind, (int(i), int(u), int(d)), str(shape))
            for name, oid, node, kind, i, u, d, shape in cur.fetchall()}


def _window(cur: psycopg.Cursor[Any], base_xmin: int) -> int:
    """Gives the age, in this transaction, of the base snapshot's xmin: every row version written since the
    base is at most that old (a transaction id at or above the base's xmin and below now).

    age() reads the raw 32-bit xmin and counts from the same stable point in every call of this transaction;
    a frozen row from more than 2^31 transactions ago may come out as young, which costs work, never a miss.
    """
    cur.execute("SELECT age(%s::text::xid)", (str(base_xmin & _MASK),))
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Change:
    changed: int  # row versions written since the base (inserted or the new side of an update)
    lost: int  # base rows updated or deleted since (exact when the base kept its young xmins, see TableState)
    rows: int
    young: tuple[int, ...] | None = None  # this snapshot's young xmins (TableState.young), for the next base
    # The changed rows themselves, for the tables whose rules re-read them (CARRIED): their tids in this
    # snapshot, and per row what CARRIED names (a key (user_id, UTC day, category), or a user's id).
    tids: tuple[str, ...] | None = None
    carried: tuple[tuple[Any, ...], ...] = ()

    @property
    def none(self) -> bool:
        return self.changed == 0 and self.lost == 0


def _changes(ctx: CheckContext, helpers: Sequence[CheckContext], tables: Sequence[str], base: Base,
             states: dict[str, State], window: int, sizes: dict[str, float], xmin: int,
             xmax: int) -> dict[str, Change | str]:
    """Gives what changed in each table, read on the check's connections at once (all in the same snapshot:
    the helpers imported it), the biggest tables first."""
    out: dict[str, Change | str] = {}

    def reader(wctx: CheckContext) -> Callable[[str], None]:
        # age() counts from a point each transaction fixes at its first call: a helper's point is later than
        # the check's when other sessions took transaction ids meanwhile, so each connection measures its own.
        own = window if wctx is ctx else _window(wctx.cur, base.kept.xmin)
        young = _young_window(wctx.cur, xmin, xmax)  # what the next base keeps of this snapshot

        def read(table: str) -> None:
            started = time.perf_counter()
            out[table] = _change(wctx.cur, table, base.kept.tables.get(table), states.get(table), own, young,
                                 carried(ctx, table))
            _timing(wctx, f"changes:{table}", (), (table,), started)
        return read

    _on_connections(ctx, helpers, sorted(tables, key=lambda t: -sizes.get(t, 0.0)), reader)
    return out


def _whole_run_reason(base: Base, fingerprint: str, xmin: int, xmax: int, datoid: int, reset: datetime | None,
                      max_age_s: int, since: bool) -> str | None:
    kept = base.kept
    if since:
        return "--since: its window moves with the clock"
    if kept.catalogue != fingerprint:
        return f"the base run {base.run_id} used another rule catalogue (tool version or rules changed)"
    if kept.datoid != datoid or xmax < kept.xmax:
        return f"the base run {base.run_id} read another database (transaction ids went back: a restore?)"
    if xmax - kept.xmin > XID_MARGIN:
        return f"wraparound: the base run {base.run_id} is {xmax - kept.xmin} transaction ids old"
    if kept.stats_reset != reset:
        return "statistics reset since the base run"
    age = (datetime.now(base.started_at.tzinfo) - base.started_at).total_seconds()
    if age > max_age_s:
        return f"the base run {base.run_id} is older than --max-base-age ({int(age // 3600)} h)"
    return None


def carried(ctx: CheckContext, table: str) -> tuple[str, ...]:
    """Gives what the changes scan collects of each changed row of `table` besides its tid (SQL on t), for the
    re-reads that follow: the (user_id, UTC day, category) key of a transaction or plan row (touched_keys),
    a user's id (USR003); () for a table whose changed rows no re-read names."""
    need = {"transactions": ("user_id", "spent_at", "category"), "daily_plan": ("user_id", "date", "category"),
            "users": ("id",)}.get(table)
    if need is None or not all(ctx.schema.has(f"{table}.{c}") for c in need):
        return ()
    if table == "users":
        return ("t.id::text",)
    day = "(t.spent_at AT TIME ZONE 'UTC')::date" if table == "transactions" else plan_day_sql("t.date")
    # the day as ISO text whatever the session's DateStyle, its era spelt out (a BC day is no key Python holds)
    day = f"CASE WHEN isfinite({day}) THEN to_char({day}, 'YYYY-MM-DD AD') ELSE ({day})::text END"
    return ("t.user_id::text", day, "t.category::text")


def _change(cur: psycopg.Cursor[Any], table: str, before: TableState | None,
            now: State | None, window: int, young_window: int | None, carry: tuple[str, ...] = ()) -> Change | str:
    """Gives what changed in a table since the base, or why that cannot be told (then its rules run in full).

    A row version whose xmin is one of the base's young xmins (TableState.young) is one the base saw: not a
    change, so `lost` is exact even when the base snapshot had a transaction in flight. The scan also gives
    this snapshot's own young xmins (young_window: the age of this snapshot's xmin), for the next base.
    """
    if now is not None and now[2] == "s":
        return f"{table}: row-level security decides which rows are read (a policy changes without a row)"
    if before is None or now is None:
        return f"{table} was not read by the base run"
    oid, node, kind, counters, shape = now
    if kind != "r":
        return f"{table} is partitioned or has children (changes are not tracked there)"
    if oid != before.oid or node != before.relfilenode:
        return f"{table} was truncated or rewritten since the base (new relfilenode)"
    if shape != before.shape and shape.split("/")[0] == before.shape.split("/")[0]:
        return f"the primary key of {table} changed since the base (its violators are kept by their key)"
    if shape != before.shape:
        return f"the columns of {table} changed since the base (an added column's value is in no row version)"
    if any(a < b for a, b in zip(counters, before.counters, strict=True)):
        return f"{table}: statistics reset since the base"
    try:
        with cur.connection.transaction():
            seen = "" if not before.young else " AND NOT t.xmin::text = ANY(%(young)s::text[])"
            if carry:  # the changed rows themselves, as one JSON array (the test on xmin made once a row, as without;
                # JSON is parsed faster than an array of records: 0.6 s against 1.0 s for 45,000 rows)
                changes = (f"0, count(*), {_young_sql(young_window)}, json_agg(json_build_array(t.xmin, t.ctid, "
                           f"{', '.join(carry)})) FILTER (WHERE {changed_sql(window)})")
            else:
                changes = f"count(*) FILTER (WHERE {changed_sql(window)}{seen}), count(*), {_young_sql(young_window)}"
            cur.execute(f"SELECT {changes} FROM {rel(table)} t", {"young": [str(x) for x in before.young or ()]})
            row = cur.fetchone()
    except psycopg.Error as exc:
        if engine.recovery_conflict(exc, cur.connection) or cur.connection.closed:
            raise
        return f"{table}: its changes could not be read ({str(exc).strip().splitlines()[0] if str(exc) else exc})"
    assert row is not None
    changed, rows = int(row[0]), int(row[1])
    if not carry:
        return Change(changed, before.rows - (rows - changed), rows, _young(row[2]))
    found = row[3] or ()  # (xmin, tid, *carry) as JSON strings; a key's day as carried() spells it
    seen_xmins = {str(x) for x in before.young or ()}
    changed = sum(1 for r in found if r[0] not in seen_xmins)  # a young xmin the base kept is the base's row
    dated = len(carry) == 3
    try:
        keys = tuple((r[2], _iso_day(r[3]), r[4]) if dated else tuple(r[2:]) for r in found)
    except ValueError as exc:  # a day no probe can read as a range (infinity, BC): the table's rules in full
        return f"{table}: a changed row's day cannot be read ({exc})"
    return Change(changed, before.rows - (rows - changed), rows, _young(row[2]), tuple(str(r[1]) for r in found),
                  keys)


def _iso_day(text: str | None) -> date | None:
    """Gives the day of carried()'s text ('2026-01-31 AD'), None for NULL; ValueError for any day Python cannot
    hold (infinity, BC, beyond 9999)."""
    if text is None:
        return None
    if not text.endswith(" AD"):
        raise ValueError(f"day {text!r}")
    return date.fromisoformat(text[:-3])


YOUNG_LIMIT = 10_000  # more distinct young xmins than this are not kept (a long transaction held xmin back)


def _young_window(cur: psycopg.Cursor[Any], xmin: int, xmax: int) -> int | None:
    """Gives the age of this snapshot's xmin, or None when the snapshot had no transaction in flight (xmin = xmax:
    no row it saw can be as young as its xmin, so there is nothing to keep and no aggregate to pay for)."""
    return _window(cur, xmin) if xmax > xmin else None


def _young_sql(window: int | None) -> str:
    """Gives SQL aggregating the distinct xmins of the rows not older than a snapshot's xmin (`window`: its age;
    None: none can be). A DISTINCT aggregate keeps the scan serial, so it is asked for only when needed."""
    if window is None:
        return "ARRAY[]::text[]"
    return f"(array_agg(DISTINCT t.xmin::text) FILTER (WHERE {changed_sql(window)}))[1:{YOUNG_LIMIT + 1}]"


def _young(found: list[str] | None) -> tuple[int, ...] | None:
    found = found or []
    return None if len(found) > YOUNG_LIMIT else tuple(sorted(int(x) for x in found))
