"""Benchmark of `check --incremental` (issue 19): its time beside a full check's on the same state.

    python benchmarks/check.py --incremental [--scale 1] [--runs 3]
    python benchmarks/incremental.py [--scale 1] [--runs 3]

Seeds `--scale` × 100,000 users × 30 days with every kind of defect, records a full check (the base, with
every violating key), then measures in `--runs` interleaved rounds (medians) the incremental check and a
full check on the same state (both as `check` runs them, in this process, in one snapshot each, without
recording), first at 0 % change, then after changing 1 % of the transactions and of the plan rows: updates
of amounts and days, soft deletes, some hard deletes, inserts, and a few new defects (orphans, duplicates,
negative amounts). Each state also compares the two checks result for result (status, count, groups), and
the base's storage is measured per violating row kept.

The change log of old keys (`mita-integrity changelog install`) is installed before the base is recorded,
so BUD001, BUD002 and USR003 re-read only the keys a change touched; the log's size per change is reported,
and what keeping a base adds to a recorded full check (`check --record` against a plain `check`, same state).

Goals: at 1 % change incremental ≤ 15 % of the full check's time, at 0 % ≤ 5 %; results identical; storage
≤ 64 bytes per violating row. Beside each ratio: what finding the changes alone costs (every row version's xmin
read, one scan a table), the floor of a design that finds changes in the rows themselves.

    python benchmarks/incremental.py --write-overhead [--scale 0.25] [--rows 2000] [--bulk 100000] [--runs 3]

measures instead what the log's triggers cost the application's writes: 2 concurrent clients each making
`--rows` single-row UPDATEs, then as many single-row DELETEs (autocommit, their connections kept, as a pool
does), and one UPDATE of `--bulk` rows; with and without the log, alternating in each run (fresh rows for
every measure), medians of `--runs`; and the log's bytes per logged row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

from common import Figure, alone, interleaved  # noqa: E402

from mita_integrity.check.run import CheckRequest, run_check  # noqa: E402
from mita_integrity.database.connection import Database, connect  # noqa: E402
from mita_integrity.findings import Report  # noqa: E402
from mita_integrity.runs import change_log, store  # noqa: E402
from mita_integrity.runs.findings_history import record  # noqa: E402

TX = "user_id, category, amount, spent_at, currency, created_at, updated_at"
# 1 % of the transactions and of the plan rows, by a hash of the id: the same rows on every run.
CHANGE_1PC = (
    # updates of amounts (a tenth of them negative: new AMT003 defects) and days
    "UPDATE transactions SET amount = CASE WHEN abs(hashtext(id::text)) % 10 = 0 THEN -amount ELSE amount + 1 END "
    "WHERE abs(hashtext(id::text)) % 1000 < 4",
    "UPDATE transactions SET spent_at = spent_at - interval '1 day' WHERE abs(hashtext(id::text)) % 1000 "
    "BETWEEN 4 AND 5",
    "UPDATE transactions SET deleted_at = now() WHERE deleted_at IS NULL AND abs(hashtext(id::text)) % 1000 "
    "BETWEEN 6 AND 7",  # soft deletes
    "DELETE FROM transactions WHERE abs(hashtext(id::text)) % 1000 = 8",  # hard deletes
    f"INSERT INTO transactions (id, {TX}) SELECT gen_random_uuid(), {TX} FROM transactions "
    "WHERE abs(hashtext(id::text)) % 1000 = 9",  # inserts: each a duplicate of an existing one (DUP003)
    f"INSERT INTO transactions (id, {TX}) SELECT gen_random_uuid(), gen_random_uuid(), category, amount, spent_at, "
    "currency, created_at, updated_at FROM transactions WHERE abs(hashtext(id::text)) % 100000 = 1",  # orphans
    "UPDATE daily_plan SET spent_amount = spent_amount + 1 WHERE abs(hashtext(id::text)) % 1000 < 6",
    "UPDATE daily_plan SET planned_amount = -1 WHERE abs(hashtext(id::text)) % 1000 BETWEEN 6 AND 7",
    "DELETE FROM daily_plan WHERE abs(hashtext(id::text)) % 1000 BETWEEN 8 AND 9",
)


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--incremental", action="store_true", help=argparse.SUPPRESS)  # from benchmarks/check.py
    out.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 users, ≈5,000,000 transactions")
    out.add_argument("--runs", type=int, default=3, help="interleaved rounds; medians are reported")
    out.add_argument("--write-overhead", action="store_true", help="measure the change log's cost to writes")
    out.add_argument("--rows", type=int, default=2000, help="with --write-overhead: single-row writes a client")
    out.add_argument("--bulk", type=int, default=100_000, help="with --write-overhead: rows of the bulk UPDATE")
    return out


def outcome(report: Report) -> dict[tuple[str, str], tuple[str, int, int | None]]:
    return {(r.code, r.table): (r.status.value, r.count, r.groups) for r in report.results}


def _timed(db: Database, last: dict[str, Report], name: str, request: CheckRequest) -> float:
    """Runs one check; keeps its report under name; gives its own duration in seconds."""
    report = run_check(db, request)
    last[name] = report
    return report.duration_ms / 1000


def measure(db: Database, args: argparse.Namespace) -> list[Figure]:
    if args.write_overhead:
        return write_overhead(db, args)
    with connect(db) as conn:  # before the base: the base's keys and the log's proof start here
        store.ensure(conn)
        print("; ".join(change_log.install(conn)), flush=True)
    # what keeping a base adds to a recorded check: the same state, with and without keeping
    t_keep = interleaved({"keep": partial(_timed, db, {}, "keep", CheckRequest(keep_base=True)),
                          "plain": partial(_timed, db, {}, "plain", CheckRequest())}, 1)
    base = run_check(db, CheckRequest(keep_base=True))
    started = time.perf_counter()
    with connect(db) as conn:
        record(conn, base)
    record_s = time.perf_counter() - started
    print(f"keeping a base: check --record's check {t_keep['keep']:.2f} s beside a plain check's "
          f"{t_keep['plain']:.2f} s (ratio {t_keep['keep'] / t_keep['plain']:.2f}); writing the run and its base "
          f"{record_s:.2f} s", flush=True)
    with connect(db) as conn:
        rows, size = conn.execute("SELECT coalesce(sum(cardinality(keys)), 0), coalesce(sum(pg_column_size(keys)), 0) "
                                  "FROM integrity.check_base_results").fetchone() or (0, 0)
        total = conn.execute("SELECT pg_total_relation_size('integrity.check_base_results') "
                             "+ pg_total_relation_size('integrity.check_bases')").fetchone()
    print(f"base recorded: {rows:,} violating rows kept, keys {size:,} bytes, tables {total[0] if total else 0:,} "
          "bytes on disk", flush=True)
    figures: list[Figure] = []
    for label, change, goal in (("0 %", (), 0.05), ("1 %", CHANGE_1PC, 0.15)):
        if change:
            with connect(db, autocommit=True) as conn:
                for statement in change:
                    conn.execute(statement)
                conn.execute("ANALYZE transactions")
                conn.execute("ANALYZE daily_plan")
                logged = conn.execute("SELECT count(*), pg_total_relation_size('integrity.change_log') "
                                      "FROM integrity.change_log").fetchone() or (0, 0)
            print(f"change log: {logged[0]:,} old keys logged, {logged[1]:,} bytes on disk "
                  f"({logged[1] / max(logged[0], 1):.0f} B a logged row, index included)", flush=True)
        last: dict[str, Report] = {}
        t = interleaved({"incremental": partial(_timed, db, last, "incremental", CheckRequest(incremental=True)),
                         "full": partial(_timed, db, last, "full", CheckRequest())}, args.runs)
        inc, full = last["incremental"], last["full"]
        same = outcome(inc) == outcome(full)
        in_full = sorted({r.code for r in inc.results if r.evaluated == "full" and r.evaluated_reason
                          and "schema rule" not in r.evaluated_reason})
        print(f"{label} change: incremental {t['incremental']:.2f} s, full {t['full']:.2f} s, "
              f"identical: {'yes' if same else 'NO'}; mode {inc.mode}; data rules in full: {', '.join(in_full)}",
              flush=True)
        for name, report in (("incremental", inc), ("full", full)):
            slowest = sorted(report.passes, key=lambda p: -p.duration_ms)[:6]
            print(f"  {name}'s slowest passes: " + ", ".join(f"{p.name} {p.duration_ms / 1000:.2f} s (c{p.connection})"
                                                          for p in slowest), flush=True)
        if not same:
            for key, value in outcome(inc).items():
                if outcome(full).get(key) != value:
                    print(f"  differs: {key}: incremental {value}, full {outcome(full).get(key)}")
        figures.append(Figure(f"{label} change: incremental / full", f"{t['incremental']:.2f} s",
                              f"{t['full']:.2f} s", f"{t['incremental'] / t['full']:.2f}", f"≤ {goal:.2f}",
                              t["incremental"] / t["full"] <= goal))
        figures.append(Figure(f"{label} change: results identical", "yes" if same else "NO", goal="yes", met=same))
        # The least this design can cost: finding the changes reads every row version's xmin (one scan a table,
        # the tables spread over the connections); the busiest connection's scans, in the last run.
        scans: dict[int, float] = {}
        for p in inc.passes:
            if p.name.startswith("changes:"):
                scans[p.connection] = scans.get(p.connection, 0.0) + p.duration_ms / 1000
        floor = max(scans.values(), default=0.0)
        figures.append(Figure(f"{label} change: finding the changes (xmin scans, last run) / full", f"{floor:.2f} s",
                              f"{t['full']:.2f} s", f"{floor / t['full']:.2f}"))
    per_row = size / rows if rows else 0.0
    figures.append(Figure("check --record's check: keeping a base / not", f"{t_keep['keep']:.2f} s",
                          f"{t_keep['plain']:.2f} s", f"{t_keep['keep'] / t_keep['plain']:.2f}"))
    figures.append(Figure("base storage per violating row (keys)", f"{per_row:.1f} B", goal="≤ 64 B",
                          met=per_row <= 64))
    if rows and total:
        figures.append(Figure("base tables on disk per violating row", f"{total[0] / rows:.1f} B"))
    return figures


def _set_log(db: Database, on: bool) -> None:
    with connect(db) as conn:
        store.ensure(conn)
        (change_log.install if on else change_log.remove)(conn)


def _fresh_ids(db: Database, n: int, walked: list[str]) -> list[str]:
    """Gives the next n transaction ids in id order after the last one given (each measure its own rows)."""
    with connect(db) as conn:
        rows = conn.execute("SELECT id::text FROM transactions WHERE id > %s::uuid ORDER BY id LIMIT %s",
                            (walked[-1], n)).fetchall()
    walked.append(rows[-1][0])
    return [r[0] for r in rows]


def _clients(db: Database, statement: str, batches: list[list[str]]) -> float:
    """Runs each batch on its own connection at once (autocommit, one statement a row); gives rows per second."""
    conns = [psycopg.connect(autocommit=True, prepare_threshold=None, **db.connect_kwargs()) for _ in batches]
    barrier = threading.Barrier(len(batches) + 1)

    def work(conn: psycopg.Connection[Any], ids: list[str]) -> None:
        barrier.wait()
        for i in ids:
            conn.execute(statement, (i,))

    threads = [threading.Thread(target=work, args=(c, b)) for c, b in zip(conns, batches, strict=True)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return sum(len(b) for b in batches) / elapsed


def write_overhead(db: Database, args: argparse.Namespace) -> list[Figure]:
    """The change log's triggers against none: single-row UPDATEs and DELETEs from 2 clients, a bulk UPDATE."""
    used = ["00000000-0000-0000-0000-000000000000"]
    got: dict[str, dict[str, list[float]]] = {m: {"update": [], "delete": [], "bulk": []} for m in ("log", "none")}
    per_row: list[float] = []
    for run in range(args.runs):
        for mode in (("log", "none") if run % 2 == 0 else ("none", "log")):
            _set_log(db, mode == "log")
            for kind, statement in (("update", "UPDATE transactions SET amount = amount + 0.01 WHERE id = %s"),
                                    ("delete", "DELETE FROM transactions WHERE id = %s")):
                ids = _fresh_ids(db, 2 * args.rows, used)
                got[mode][kind].append(_clients(db, statement, [ids[: args.rows], ids[args.rows:]]))
            ids = _fresh_ids(db, args.bulk, used)
            with connect(db, autocommit=True) as conn:
                started = time.perf_counter()
                conn.execute("UPDATE transactions SET amount = amount + 0.01 WHERE id = ANY(%s::uuid[])", (ids,))
                got[mode]["bulk"].append(time.perf_counter() - started)
                if mode == "log":
                    n, size = conn.execute("SELECT count(*), pg_total_relation_size('integrity.change_log') "
                                           "FROM integrity.change_log").fetchone() or (0, 0)
                    per_row.append(size / max(n, 1))
                conn.execute("VACUUM transactions")
    _set_log(db, False)
    med = {m: {k: statistics.median(v) for k, v in kinds.items()} for m, kinds in got.items()}
    figures = []
    for kind, label in (("update", "1-row UPDATEs, 2 clients"), ("delete", "1-row DELETEs, 2 clients")):
        figures.append(Figure(f"{label}: rows/s with the log / without", f"{med['log'][kind]:,.0f}/s",
                              f"{med['none'][kind]:,.0f}/s", f"{med['log'][kind] / med['none'][kind]:.2f}"))
    figures.append(Figure(f"UPDATE of {args.bulk:,} rows: time with the log / without", f"{med['log']['bulk']:.2f} s",
                          f"{med['none']['bulk']:.2f} s", f"{med['log']['bulk'] / med['none']['bulk']:.2f}"))
    figures.append(Figure("change log on disk per logged row (index included)", f"{statistics.median(per_row):.0f} B"))
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    return figures


def main() -> None:
    alone("incremental", parser(), measure)


if __name__ == "__main__":
    main()
