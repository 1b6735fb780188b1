"""What a recorded check keeps for the next `check --incremental`: its snapshot, its tables' states, and per
result its count and the keys of every violating row (integrity.check_bases, integrity.check_base_results:
step 2 of integrity_schema; both cascade from integrity.runs, so they are pruned with the run).

The storage only: what to keep and how a base is used is check/incremental/'s. Imports nothing of the
check, so the run history (which writes a base with its run) stays below the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..findings import Result, Severity, Status

SCHEMA = "integrity"


@dataclass(frozen=True)
class TableState:
    oid: int
    relfilenode: int
    rows: int
    counters: tuple[int, int, int]  # n_tup_ins, n_tup_upd, n_tup_del: hints only, a decrease is a reset
    shape: str = ""  # a digest of its columns: an added column's default is in no row version's xmin
    # The distinct xmins (raw 32-bit) of the rows this snapshot saw that are not older than its xmin: written by
    # transactions that committed while another was still in flight. A row version with one of these xmins now
    # is one the base saw, unchanged. None: not kept (too many, or an older base).
    young: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Kept:
    """What a recorded run keeps for the next incremental check (written with the run, see save)."""

    catalogue: str
    options: dict[str, Any]
    snapshot: str
    xmin: int
    xmax: int
    datoid: int
    stats_reset: datetime | None
    utc_date: date
    tables: dict[str, TableState]
    results: dict[tuple[str, str], tuple[Result, list[str] | None]]  # (code, table) -> result, violating keys


@dataclass(frozen=True)
class Base:
    run_id: str
    started_at: datetime
    kept: Kept



def save(cur: psycopg.Cursor[Any], run_id: str, kept: Kept) -> None:
    """Writes what the run keeps for the next incremental check (inside the run's recording transaction)."""
    tables = {name: {"oid": s.oid, "relfilenode": s.relfilenode, "rows": s.rows, "counters": list(s.counters),
                     "shape": s.shape, "young": None if s.young is None else list(s.young)}
              for name, s in kept.tables.items()}
    cur.execute(f"INSERT INTO {SCHEMA}.check_bases (run_id, catalogue, options, snapshot, snap_xmin, snap_xmax, "
                "datoid, stats_reset, utc_date, tables) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (run_id, kept.catalogue, Jsonb(kept.options), kept.snapshot, kept.xmin, kept.xmax, kept.datoid,
                 kept.stats_reset, kept.utc_date, Jsonb(tables)))
    cur.executemany(
        f"INSERT INTO {SCHEMA}.check_base_results (run_id, code, table_name, status, count, groups, message, col, "
        "sample, keys) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [(run_id, code, table, r.status.value, r.count, r.groups, r.message, r.column, list(r.sample), keys)
         for (code, table), (r, keys) in kept.results.items()])


def load(cur: psycopg.Cursor[Any], options: dict[str, Any], severity_of: Callable[[str], Severity]) -> Base | str:
    """Gives the newest recorded base with these options, or why there is none (read in the check's snapshot)."""
    cur.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname IN ('check_bases', 'check_base_results')", (SCHEMA,))
    row = cur.fetchone()
    if not row or row[0] != 2:
        return "no recorded check to start from (record one with check --record)"
    try:
        with cur.connection.transaction():
            cur.execute(f"""SELECT b.run_id::text, r.started_at, b.catalogue, b.options, b.snapshot, b.snap_xmin,
                                   b.snap_xmax, b.datoid, b.stats_reset, b.utc_date, b.tables
                              FROM {SCHEMA}.check_bases b JOIN {SCHEMA}.runs r ON r.id = b.run_id
                             WHERE r.kind = 'check' AND r.status = 'completed'
                             ORDER BY r.started_at DESC LIMIT 50""")
            rows = cur.fetchall()
            if not rows:
                return "no recorded check to start from (record one with check --record)"
            chosen = next((r for r in rows if r[3] == options), None)
            if chosen is None:
                return f"the last recorded check {rows[0][0]} ran with other options"
            cur.execute(f"SELECT code, table_name, status, count, groups, message, col, sample, keys "
                        f"FROM {SCHEMA}.check_base_results WHERE run_id = %s", (chosen[0],))
            results = {(code, table): (Result(code, "", 0, severity_of(code), Status(status), table, col,
                                              int(count), None if groups is None else int(groups), message or "",
                                              tuple(sample or ())), None if keys is None else list(keys))
                       for code, table, status, count, groups, message, col, sample, keys in cur.fetchall()}
    except psycopg.errors.InsufficientPrivilege as exc:
        return f"the recorded checks cannot be read ({exc.diag.message_primary})"
    run_id, started, catalogue, opts, snap, xmin, xmax, datoid, reset, day, tables = chosen
    states = {name: TableState(int(s["oid"]), int(s["relfilenode"]), int(s["rows"]), tuple(s["counters"]),
                               str(s.get("shape", "")),
                               None if s.get("young") is None else tuple(int(x) for x in s["young"]))
              for name, s in tables.items()}
    return Base(run_id, started, Kept(catalogue, opts, snap, int(xmin), int(xmax), int(datoid), reset, day, states,
                                      results))
