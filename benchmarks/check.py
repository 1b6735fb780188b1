"""Benchmark of `check` (issue 3): against the physical floor and the naive way, in one run, medians of 3.

    python benchmarks/check.py [--scale 1.0] [--runs 3]

At scale 1 it seeds 100,000 users (≈5,000,000 transactions) with every kind of defect, then measures
(a) `check` over the full catalogue, (b) the floor: one aggregate pass (a sequential scan) over every
table the catalogue reads, (c) the naive way: one query per rule, orphans as NOT IN (SELECT id FROM users).
Goals: a/b ≤ 3, c/a ≥ 3, peak memory of the check process ≤ 200 MB, and a flat time per million rows at
scales 0.25, 0.5 and 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, cluster, figures_table, median_seconds, mita, peak_rss_mb, seeded, url  # noqa: E402

from mita_integrity.check import CheckRequest, run_check  # noqa: E402
from mita_integrity.connection import Database, connect, transaction  # noqa: E402
from mita_integrity.rules import catalogue, engine  # noqa: E402
from mita_integrity.rules.base import RowRule  # noqa: E402
from mita_integrity.rules.context import CheckContext, CheckOptions, load_schema  # noqa: E402
from mita_integrity.rules.dayboundary import transaction_day_sql  # noqa: E402
from mita_integrity.rules.references import REF011_WHERE  # noqa: E402
from mita_integrity.sqlscript import _query  # noqa: E402


def floor_pass(db: Database) -> None:
    """One aggregate pass over every table the catalogue reads (sequential scans, like the check's)."""
    tables = sorted({r.table for r in catalogue.ALL_RULES if r.table} | {"moods", "push_tokens", "budget_advice",
                    "notification_logs", "expenses", "user_answers", "user_profiles", "installments"})
    with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
        cur.execute("SET LOCAL enable_indexonlyscan = off")
        for name in tables:
            cur.execute(f'SELECT count(*) FROM "{name}"')
            cur.fetchone()


def one_grouping(db: Database) -> None:
    """The least an exact BUD001 must do: group the live transactions once by (user, day), nothing else."""
    day = transaction_day_sql("t.spent_at")
    with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
        cur.execute(f"SELECT count(*) FROM (SELECT t.user_id, {day}, sum(t.amount) FROM transactions t "
                    f"WHERE t.deleted_at IS NULL GROUP BY 1, 2) g")
        cur.fetchone()


def naive_queries(db: Database) -> list[str]:
    """Gives one query per rule and table, orphans as NOT IN: how a script would do it by hand."""
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        ctx = CheckContext(cur, load_schema(cur), CheckOptions())
        rules = [r for r in engine.expanded(ctx, catalogue.ALL_RULES) if not r.physical]
    queries = []
    for rule in rules:
        if isinstance(rule, RowRule) and rule.table:
            live = "t.deleted_at IS NULL" if rule.live_only and ctx.schema.has(f"{rule.table}.deleted_at") else ""
            sql = rule.standalone_sql(live)
            for join in (j for j in rule.joins if j.key == "id"):  # orphans: the NOT IN a script would write
                sql = sql.replace(f"NOT EXISTS (SELECT 1 FROM {join.table} {join.alias} WHERE {join.on})",
                                  f"t.{join.on.split('t.')[-1]} NOT IN (SELECT id FROM {join.table})")
            queries.append(sql)
        elif rule.code == "REF011":
            queries += [f"SELECT count(*) FROM {t} t WHERE {REF011_WHERE}"
                        for t in ("expenses", "user_answers", "user_profiles")]
        else:
            queries.append(_query(ctx, rule))
    return queries


def naive(db: Database, queries: list[str]) -> None:
    with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
        for sql in queries:
            cur.execute(sql)
            cur.fetchall()


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--scale", type=float, default=1.0)
    out.add_argument("--runs", type=int, default=3)
    return out


def measure(db: Database, args: argparse.Namespace, check_s: float | None = None) -> list[Figure]:
    """Gives the check's figures on db: against the floor, one grouping, the naive way; and its peak memory."""
    if check_s is None:
        check_s = median_seconds(lambda: run_check(db, CheckRequest()), args.runs)
    floor_s = median_seconds(lambda: floor_pass(db), args.runs)
    grouping_s = median_seconds(lambda: one_grouping(db), args.runs)
    queries = naive_queries(db)
    naive_s = median_seconds(lambda: naive(db, queries), args.runs)
    memory_mb, code = peak_rss_mb(mita("--db", url(db), "check", "--format", "json", "--output", "/dev/null"))
    idle_mb, _ = peak_rss_mb(mita("rules", "--format", "json"))
    print(f"  check {check_s:.2f} s, floor {floor_s:.2f} s, one grouping {grouping_s:.2f} s, naive {naive_s:.2f} s "
          f"({len(queries)} queries), peak memory {memory_mb:.0f} MB (exit {code}; `rules` alone {idle_mb:.0f} MB)",
          flush=True)
    return [
        Figure("check, full catalogue (a) vs floor (b): one pass per table", f"{check_s:.2f} s",
               f"floor {floor_s:.2f} s", f"{check_s / floor_s:.2f}", "≤ 3", check_s / floor_s <= 3),
        Figure("check vs one exact grouping of transactions by (user, day)", f"{check_s:.2f} s",
               f"grouping {grouping_s:.2f} s", f"{check_s / grouping_s:.2f}"),
        Figure("naive (c): a query per rule, NOT IN, vs check: c/a", f"{naive_s:.2f} s",
               f"check {check_s:.2f} s", f"{naive_s / check_s:.2f}", "≥ 3", naive_s / check_s >= 3),
        Figure("check peak memory (RSS)", f"{memory_mb:.0f} MB", f"`rules` alone {idle_mb:.0f} MB",
               f"{memory_mb / idle_mb:.2f}", "≤ 200 MB", memory_mb <= 200 and code in (0, 1, 2)),
    ]


def main() -> None:
    args = parser().parse_args()
    scales = [args.scale * s for s in (0.25, 0.5, 1.0)]
    with cluster() as c:
        print(f"PostgreSQL {c.version}, scales {', '.join(f'{s:g}' for s in scales)}, medians of {args.runs}")
        per_million = []
        for i, scale in enumerate(scales):
            users = int(100_000 * scale)
            db, seed_s, rows = seeded(c, f"bench_{i}", users)
            check_s = median_seconds(lambda db=db: run_check(db, CheckRequest()), args.runs)
            per_million.append((scale, rows, check_s, check_s / (rows / 1e6)))
            print(f"  scale {scale:g}: {users:,} users, {rows:,} rows seeded in {seed_s:.1f} s; "
                  f"check {check_s:.2f} s = {check_s / (rows / 1e6):.3f} s per million rows", flush=True)
        figures = measure(db, args, per_million[-1][2])
    most, least = max(p[3] for p in per_million), min(p[3] for p in per_million)
    figures.append(Figure("check time per million rows over scales 0.25, 0.5, 1: max/min", f"{most:.3f} s",
                          f"{least:.3f} s", f"{most / least:.2f}", "≤ 1.5", most / least <= 1.5))
    print()
    print(figures_table(figures))


if __name__ == "__main__":
    main()
