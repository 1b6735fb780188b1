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

Goals: at 1 % change incremental ≤ 15 % of the full check's time, at 0 % ≤ 5 %; results identical; storage
≤ 64 bytes per violating row.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

from common import Figure, alone, interleaved  # noqa: E402

from mita_integrity.check.run import CheckRequest, run_check  # noqa: E402
from mita_integrity.database.connection import Database, connect  # noqa: E402
from mita_integrity.findings import Report  # noqa: E402
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
    return out


def outcome(report: Report) -> dict[tuple[str, str], tuple[str, int, int | None]]:
    return {(r.code, r.table): (r.status.value, r.count, r.groups) for r in report.results}


def _timed(db: Database, last: dict[str, Report], name: str, request: CheckRequest) -> float:
    """Runs one check; keeps its report under name; gives its own duration in seconds."""
    report = run_check(db, request)
    last[name] = report
    return report.duration_ms / 1000


def measure(db: Database, args: argparse.Namespace) -> list[Figure]:
    base = run_check(db, CheckRequest(keep_base=True))
    with connect(db) as conn:
        record(conn, base)
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
    per_row = size / rows if rows else 0.0
    figures.append(Figure("base storage per violating row (keys)", f"{per_row:.1f} B", goal="≤ 64 B",
                          met=per_row <= 64))
    if rows and total:
        figures.append(Figure("base tables on disk per violating row", f"{total[0] / rows:.1f} B"))
    return figures


def main() -> None:
    alone("incremental", parser(), measure)


if __name__ == "__main__":
    main()
