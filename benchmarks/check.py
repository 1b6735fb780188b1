"""Benchmark of `check` (issues 3 and 13): the full check beside the least any exact check must do.

    python benchmarks/check.py [--scale 1] [--runs 3]          # every figure, at one scale
    python benchmarks/check.py --scales 0.25,0.5,1 [--runs 3]  # and the time per million rows at each scale

At scale 1 it seeds 100,000 users × 30 days with every kind of defect (≈5,000,000 transactions, 10.3
million rows), copies the database and migrates the copy to head, then measures in `--runs` interleaved
rounds (each round runs every measure once, in a rotating order; medians are reported):

(a) the full check, as a user runs it: `mita-integrity check --format json` in its own process. Its time is
    the report's own duration_ms (connection, snapshot and every pass; not Python's start-up, which is
    printed beside it); its peak resident memory is the process's; the per-pass times are the report's
    top-level `passes` list when the engine writes one.
(b) the floor: one sequential pass per table the catalogue reads, aggregating every column its rules read
    (count(column): each row's tuple is read and deformed up to that column), all in one snapshot.
(g) one exact hash grouping of the live transactions by (user_id, UTC day, category) with their sums:
    what BUD001 and the duplicate rules cannot avoid, and no scan of a table can show.
(c) the naive way (benchmarks/naive.py): one hand-written query per rule, orphans as NOT IN.
head: (a) again on the copy migrated to head, where validated constraints make most rules `guaranteed`.
(u) (a) on the database before 0022 without the rules head guarantees (`--ignore`): what the rules head still
    runs, each exactly, cost on the same data; head/pre cannot be much below u/pre unless those rules run
    faster on head's schema than on the old one.

Goals (issue 13): a/(b+g) ≤ 2.5, c/a ≥ 2, peak memory ≤ 200 MB, head/pre ≤ 0.5, and with --scales a flat
time per million rows (max/min ≤ 1.5). The naive counts are compared with the check's: a disagreement is
printed, since a baseline that counts something else proves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

import naive  # noqa: E402
from common import (  # noqa: E402
    Figure,
    cluster,
    figures_table,
    interleaved,
    mita,
    seeded,
    table,
    timed,
    url,
    watched,
)

from mita_integrity.database.connection import Database, connect, transaction  # noqa: E402
from mita_integrity.migration import command as migrate  # noqa: E402

# The columns the catalogue's rules read, per table (absent ones are left out); every other table with a
# user_id (REF010, REF011) or a deleted_at (SDL001) is read for those columns and its primary key.
READ_COLUMNS = {
    "users": ("id", "email", "password_hash", "has_onboarded", "monthly_income", "annual_income", "created_at"),
    "transactions": ("id", "user_id", "goal_id", "category", "amount", "currency", "spent_at", "created_at",
                     "updated_at", "deleted_at"),
    "goals": ("id", "user_id", "title", "target_amount", "saved_amount", "progress", "status", "created_at",
              "last_updated", "completed_at", "deleted_at"),
    "daily_plan": ("id", "user_id", "date", "category", "planned_amount", "spent_amount", "created_at"),
    "habit_completions": ("id", "habit_id", "user_id"),
    "habits": ("id", "user_id"),
    "subscriptions": ("id", "user_id"),
}
GROUPING = """SELECT count(*) FROM (
    SELECT t.user_id, (t.spent_at AT TIME ZONE 'UTC')::date AS day, t.category, sum(t.amount)
      FROM transactions t WHERE t.deleted_at IS NULL GROUP BY 1, 2, 3) g"""


def floor_statements(db: Database) -> list[str]:
    """Gives (b): one aggregate over every column read, per table the catalogue reads."""
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        cur.execute("""SELECT table_name, array_agg(column_name::text) FROM information_schema.columns
                        WHERE table_schema = 'public' GROUP BY 1 ORDER BY 1""")
        live = {name: set(columns) for name, columns in cur.fetchall()}
    out = []
    for name, present in live.items():
        wanted = list(READ_COLUMNS.get(name, ()))
        if not wanted and name != "users" and present & {"user_id", "deleted_at"}:
            wanted = ["id", "user_id", "deleted_at"]
        columns = [c for c in wanted if c in present]
        if columns:
            aggregates = ", ".join(f'count("{c}")' for c in columns)
            out.append(f'SELECT count(*), {aggregates} FROM "{name}"')
    return out


def floor_pass(db: Database, statements: list[str]) -> None:
    with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
        cur.execute("SET LOCAL enable_indexonlyscan = off")  # a pass over the heap, as the check's scans are
        for statement in statements:
            cur.execute(statement.encode())
            cur.fetchall()


def grouping(db: Database) -> None:
    with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
        cur.execute("SET LOCAL enable_sort = off")  # a hash grouping, however the planner would rather sort
        cur.execute(GROUPING.encode())
        cur.fetchone()


def grouping_plan(db: Database) -> str:
    """Gives the grouping's aggregate node as the planner chose it (for the record: hashed, and parallel?)."""
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        cur.execute("SET LOCAL enable_sort = off")
        cur.execute(b"EXPLAIN (FORMAT JSON) " + GROUPING.encode())
        row = cur.fetchone()

    def grouped(node: dict[str, Any]) -> dict[str, Any] | None:
        if node.get("Node Type") == "Aggregate" and node.get("Strategy") != "Plain":
            return node
        return next((found for child in node.get("Plans", ()) if (found := grouped(child))), None)

    node = grouped(row[0][0]["Plan"]) if row else None
    if node is None:
        return "no grouping node found"
    return f"{node['Strategy'].lower()} aggregate" + (", parallel" if "Partial Mode" in node else "")


class Checker:
    """(a): runs `mita-integrity check --format json` in a watched process; keeps every run's figures."""

    def __init__(self, db: Database, folder: Path, label: str, ignore: Sequence[str] = ()) -> None:
        self.db, self.label, self.ignore = db, label, tuple(ignore)
        self.output = folder / f"{label}.json"
        self.process_s: list[float] = []
        self.rss_mb: list[float] = []
        self.reports: list[dict[str, Any]] = []

    def __call__(self) -> float:
        ignored = ("--ignore", ",".join(self.ignore)) if self.ignore else ()
        run = watched(mita("--db", url(self.db), "check", "--format", "json", "--output", str(self.output), *ignored))
        if run.code not in (0, 1, 2):
            raise SystemExit(f"the check on {self.db.dbname} ended with exit {run.code}: the figures would be wrong")
        report = json.loads(self.output.read_text(encoding="utf-8"))
        errors = [f"{r['code']} {r['table']}: {r.get('reason')}" for r in report["results"] if r["status"] == "error"]
        if errors:
            raise SystemExit(f"rules ended in error on {self.db.dbname}: {'; '.join(errors)}")
        self.process_s.append(run.seconds)
        self.rss_mb.append(run.rss_mb)
        self.reports.append(report)
        return float(report["duration_ms"]) / 1000

    def summary(self) -> dict[str, int]:
        return dict(self.reports[-1]["summary"])

    def passes(self) -> list[tuple[str, str, float]] | None:
        """Gives (pass, tables, median seconds) over the runs, or None when the engine reports no passes."""
        runs: list[list[dict[str, Any]]] = []
        for report in self.reports:
            passes = report.get("passes")
            if not isinstance(passes, list) or not passes:
                return None
            runs.append(passes)
        times: dict[str, list[float]] = {}
        tables: dict[str, str] = {}
        for passes in runs:
            seen: dict[str, int] = {}
            for item in passes:  # a name that comes back within one run is told apart by its order
                name = str(item.get("name"))
                seen[name] = seen.get(name, 0) + 1
                name += f" #{seen[name]}" if seen[name] > 1 else ""
                times.setdefault(name, []).append(float(item.get("duration_ms", 0)) / 1000)
                found = item.get("tables") or ()
                tables[name] = ", ".join(found) if isinstance(found, list) else str(found)
        order = sorted(times, key=lambda n: -statistics.median(times[n]))
        return [(name, tables[name], statistics.median(times[name])) for name in order]


def print_passes(checker: Checker) -> None:
    passes = checker.passes()
    if passes is None:
        # The results' own duration_ms is their pass's time (shared by the rules of one pass): the nearest
        # thing an engine without `passes` says about where the time went.
        slowest: dict[str, int] = {}
        for result in checker.reports[-1]["results"]:
            key = f"{result['code']} {result['table']}"
            slowest[key] = max(slowest.get(key, 0), int(result.get("duration_ms") or 0))
        top = sorted(slowest.items(), key=lambda item: -item[1])[:6]
        print(f"  per-pass times ({checker.label}): not reported by this version; the slowest results' own "
              f"duration_ms (their pass's time): {', '.join(f'{k} {v / 1000:.2f} s' for k, v in top)}", flush=True)
        return
    rows = [("pass", "tables", "median s")] + [(n, t, f"{s:.2f}") for n, t, s in passes]
    print(f"  per-pass times ({checker.label}), slowest first:")
    print("    " + table(rows).replace("\n", "\n    "), flush=True)


def copy_database(db: Database, name: str) -> Database:
    """Gives a copy of db (nobody may be connected to it while it is copied)."""
    admin = db.with_dbname("postgres")
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{db.dbname}" STRATEGY FILE_COPY'.encode())
    return admin.with_dbname(name)


def drop_database(db: Database) -> None:
    with connect(db.with_dbname("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db.dbname}" WITH (FORCE)'.encode())


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 users, ≈5,000,000 transactions")
    out.add_argument("--scales", help="comma-separated scales, e.g. 0.25,0.5,1: the time per million rows at each; "
                                      "every other figure at the largest")
    out.add_argument("--runs", type=int, default=3, help="interleaved rounds; medians are reported")
    out.add_argument("--no-head", action="store_true", help="leave out the check on the copy migrated to head")
    return out


def measure(db: Database, args: argparse.Namespace) -> list[Figure]:
    """Gives the check's figures on db (seeded, at the baseline): a against b + g, c, its memory, head."""
    return measured(db, args)[0]


def measured(db: Database, args: argparse.Namespace) -> tuple[list[Figure], float]:
    """Gives the figures of `measure`, and the check's median seconds (a)."""
    head = None
    unguaranteed: Checker | None = None
    try:
        if not getattr(args, "no_head", False):
            started = time.perf_counter()
            head = copy_database(db, f"{db.dbname}_head")
            with contextlib.redirect_stderr(io.StringIO()):  # the migrations' progress lines
                migrate.upgrade(head, "head")
            with connect(head, autocommit=True) as conn:
                conn.execute(b"VACUUM ANALYZE")
            print(f"  a copy of the database migrated to head in {time.perf_counter() - started:.0f} s", flush=True)
        listed = subprocess.run(mita("rules", "--format", "json"), capture_output=True, text=True, check=True).stdout
        codes = {rule["code"] for rule in json.loads(listed) if not rule["physical"]}
        with connect(db) as conn, transaction(conn, read_only=True) as cur:
            statements = naive.queries(cur, codes)
        floors = floor_statements(db)
        naive_counts: dict[str, int] = {}

        def run_naive() -> None:
            with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
                naive_counts.update(naive.run(cur, statements))

        with tempfile.TemporaryDirectory(prefix="mita-bench-") as folder:
            pre = Checker(db, Path(folder), "pre")
            checker_head = Checker(head, Path(folder), "head") if head is not None else None
            works: dict[str, Callable[[], float]] = {
                "a": pre, "b": timed(lambda: floor_pass(db, floors)), "g": timed(lambda: grouping(db)),
                "c": timed(run_naive), **({"head": checker_head} if checker_head is not None else {})}
            if checker_head is not None:  # (u): the rules head does not guarantee, on the same data before 0022
                checker_head()  # (a first run, not counted: which rules head guarantees)
                guaranteed = sorted({r["code"] for r in checker_head.reports.pop()["results"]
                                     if r["status"] == "guaranteed"})
                checker_head.process_s.clear()
                checker_head.rss_mb.clear()
                unguaranteed = works["u"] = Checker(db, Path(folder), "pre-unguaranteed", ignore=guaranteed)
            t = interleaved(works, args.runs)
        plan = grouping_plan(db)
    finally:
        if head is not None:
            drop_database(head)
    a, b, g, c = t["a"], t["b"], t["g"], t["c"]
    rss = max(pre.rss_mb)
    startup = statistics.median(pre.process_s) - a
    print(f"  (a) check {a:.2f} s (its process {statistics.median(pre.process_s):.2f} s: {startup:.2f} s of start-up "
          f"and output), peak RSS {rss:.0f} MB; {pre.summary()['rules_run']} rules run, "
          f"{pre.summary()['rules_guaranteed']} guaranteed", flush=True)
    print(f"  (b) floor {b:.2f} s: {len(floors)} tables, one pass each over the columns the rules read", flush=True)
    print(f"  (g) one exact grouping of live transactions by (user_id, day, category) {g:.2f} s ({plan})", flush=True)
    print(f"  (c) naive {c:.2f} s: {len(statements)} queries, orphans as NOT IN", flush=True)
    compared, wrong = naive.disagreements(naive_counts, pre.reports[-1])
    print(f"  naive and check counts: {'agree on all' if not wrong else 'DISAGREE on some of'} {compared} data rules"
          + (": " + "; ".join(wrong) if wrong else ""), flush=True)
    print_passes(pre)
    figures = [
        Figure("check (a) vs floor (b) + one grouping (g): a/(b+g)", f"{a:.2f} s",
               f"b {b:.2f} s + g {g:.2f} s", f"{a / (b + g):.2f}", "≤ 2.5", a / (b + g) <= 2.5),
        Figure("naive (c): a query per rule, NOT IN, vs check: c/a", f"{c:.2f} s", f"check {a:.2f} s",
               f"{c / a:.2f}", "≥ 2", c / a >= 2),
        Figure("check peak memory (RSS)", f"{rss:.0f} MB", "", "", "≤ 200 MB", rss <= 200),
    ]
    if checker_head is not None:
        h = t["head"]
        summary = checker_head.summary()
        print(f"  head: check {h:.2f} s; {summary['rules_run']} rules run, {summary['rules_guaranteed']} guaranteed",
              flush=True)
        print_passes(checker_head)
        figures.append(Figure(f"check at head ({summary['rules_guaranteed']} rules guaranteed) vs before: head/pre",
                              f"{h:.2f} s", f"pre {a:.2f} s", f"{h / a:.2f}", "≤ 0.5", h / a <= 0.5))
        # The rules head still runs, each exactly, cost on the data before 0022 what this says: head/pre cannot
        # be much below it unless the same rules run faster on head's schema than on the old one.
        u = t["u"]
        assert unguaranteed is not None
        print(f"  (u) pre without the {len(unguaranteed.ignore)} rules head guarantees "
              f"({', '.join(unguaranteed.ignore)}): {u:.2f} s", flush=True)
        figures.append(Figure("pre, only the rules head does not guarantee (u) vs pre: u/pre (head/pre's floor "
                              "while they run exactly)", f"{u:.2f} s", f"pre {a:.2f} s", f"{u / a:.2f}"))
    return figures, a


def main() -> None:
    if "--incremental" in sys.argv[1:]:  # issue 19: its own module (benchmarks/incremental.py)
        import incremental

        incremental.main()
        return
    args = parser().parse_args()
    scales = [float(s) for s in args.scales.split(",")] if args.scales else [args.scale]
    with cluster() as c:
        print(f"PostgreSQL {c.version}, scales {', '.join(f'{s:g}' for s in scales)}, "
              f"{args.runs} interleaved rounds, medians", flush=True)
        per_million: list[tuple[float, int, float]] = []
        for i, scale in enumerate(sorted(scales)):
            users = int(100_000 * scale)
            db, seed_s, rows = seeded(c, f"bench_{i}", users)
            print(f"scale {scale:g}: {users:,} users, {rows:,} rows seeded in {seed_s:.1f} s", flush=True)
            if i < len(scales) - 1:
                with tempfile.TemporaryDirectory(prefix="mita-bench-") as folder:
                    a = interleaved({"a": Checker(db, Path(folder), f"scale{i}")}, args.runs)["a"]
                drop_database(db)
            else:
                figures, a = measured(db, args)
            per_million.append((scale, rows, a / (rows / 1e6)))
            print(f"  scale {scale:g}: check {a:.2f} s = {a / (rows / 1e6):.3f} s per million rows", flush=True)
    if len(per_million) > 1:
        print("time per million rows: " + ", ".join(f"scale {s:g} ({r:,} rows) {p:.3f} s"
                                                   for s, r, p in per_million))
        most, least = max(p for _, _, p in per_million), min(p for _, _, p in per_million)
        figures.append(Figure(f"check time per million rows at scales {', '.join(f'{s:g}' for s in scales)}: "
                              "max/min", f"{most:.3f} s", f"{least:.3f} s", f"{most / least:.2f}", "≤ 1.5",
                              most / least <= 1.5))
    print()
    print(figures_table(figures))


if __name__ == "__main__":
    main()
