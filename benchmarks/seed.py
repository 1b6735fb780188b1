"""Benchmark of `seed`: 100,000 users × 30 days with every defect, against the physical floor, in one run.

    python benchmarks/seed.py [--scale 1.0] [--days 30] [--seed 7]

It starts a throw-away PostgreSQL 16 (the embedded one), migrates a database to the baseline and seeds
int(100000 × scale) users with --corrupt. The goal is 60 s at scale 1 (prorated by scale). The floor is
measured in the same run on a second database: one plain INSERT … SELECT FROM generate_series of as many
transactions as the seed made, with the simplest values (nothing else: no calendar, no other tables),
(a) into the bare heap (indexes and foreign keys set aside) and (b) followed by rebuilding the table's
indexes, which any loader must pay to leave the table usable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

from common import Figure, figures_table  # noqa: E402

from mita_integrity.database import embedded
from mita_integrity.database.connection import Database, connect  # noqa: E402
from mita_integrity.migration import command as migrate  # noqa: E402
from mita_integrity.seed import SeedOptions, SeedResult, seed_database  # noqa: E402
from mita_integrity.seed.indexes import (  # noqa: E402
    drop_foreign_keys,
    drop_indexes,
    restore_indexes,
    saved_foreign_keys,
    saved_indexes,
)
from tests.support.pgcluster import start_cluster  # noqa: E402

GOAL_SECONDS = 60.0
FULL_SCALE_USERS = 100_000


def new_database(admin: Database) -> Database:
    """Gives a fresh database migrated to the baseline."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    db = admin.with_dbname(name)
    migrate.upgrade(db, migrate.BASELINE)
    return db


def run_seed(db: Database, users: int, days: int, seed: int) -> SeedResult:
    with connect(db) as conn:
        return seed_database(conn, SeedOptions(users=users, days=days, seed=seed, corrupt=True))


def floor_seconds(db: Database, rows: int) -> tuple[float, float]:
    """Gives the seconds of a plain INSERT of `rows` transactions into the bare heap, and of its index rebuild."""
    with connect(db) as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit TO off")
        cur.execute("SET LOCAL work_mem TO '256MB'")
        cur.execute("SET LOCAL maintenance_work_mem TO '1GB'")
        saved = saved_indexes(cur, ("transactions",))
        keys = saved_foreign_keys(cur, ("transactions",))
        drop_foreign_keys(cur, keys)
        drop_indexes(cur, saved)
        started = time.perf_counter()
        cur.execute(f"""
            INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, updated_at)
            SELECT md5(i::text)::uuid, md5((i / 50)::text)::uuid, 'food', (i % 5000) * 0.01 + 0.01, 'USD',
                   to_timestamp(1790000000 - i), to_timestamp(1790000000 - i), to_timestamp(1790000000 - i)
              FROM generate_series(1, {int(rows)}) AS i""")
        heap = time.perf_counter() - started
        started = time.perf_counter()
        restore_indexes(cur, saved)
        rebuild = time.perf_counter() - started
        conn.rollback()
    return heap, rebuild


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    out.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 users")
    out.add_argument("--days", type=int, default=30)
    out.add_argument("--seed", type=int, default=7)
    return out


def measure(admin: Database, args: argparse.Namespace) -> tuple[list[Figure], Database]:
    """Seeds a new database and measures the floor on another; gives the figures and the seeded database."""
    users = max(10, int(FULL_SCALE_USERS * args.scale))
    goal = GOAL_SECONDS * users / FULL_SCALE_USERS
    db = new_database(admin)
    result = run_seed(db, users, args.days, args.seed)
    tx = result.rows.get("transactions", 0)
    total = sum(result.rows.values())
    floor_db = new_database(admin)
    heap, rebuild = floor_seconds(floor_db, tx)
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{floor_db.dbname}"')  # type: ignore[arg-type]
    secs = result.seconds
    print(f"  seed --users {users:,} --days {args.days} --corrupt: {secs:.1f} s, {tx:,} transactions, {total:,} rows; "
          "stages " + ", ".join(f"{k} {v:.1f} s" for k, v in result.stage_seconds.items()), flush=True)
    print(f"  floor: one plain INSERT of {tx:,} transactions (md5 ids, constant values): heap {heap:.1f} s, "
          f"index rebuild {rebuild:.1f} s", flush=True)
    figures = [
        Figure(f"seed, {users:,} users × {args.days} days --corrupt", f"{secs:.1f} s", f"goal {goal:.0f} s",
               f"{secs / goal:.2f}", "≤ 1.00", secs <= goal),
        Figure("seed, transactions rows/s", f"{tx / secs:,.0f}", f"floor {tx / (heap + rebuild):,.0f}",
               f"{(tx / secs) / (tx / (heap + rebuild)):.2f}"),
        Figure("seed, all rows/s", f"{total / secs:,.0f}", f"floor heap only {tx / heap:,.0f}",
               f"{(total / secs) / (tx / heap):.2f}"),
    ]
    return figures, db


def main() -> None:
    args = parser().parse_args()
    load = os.getloadavg()[0]
    cluster = start_cluster(embedded.bin_dir())
    try:
        print(f"PostgreSQL {cluster.version} (throw-away cluster, {os.cpu_count()} CPUs, load average {load:.2f} "
              "at start)", flush=True)
        figures, _ = measure(Database.from_url(cluster.url), args)
    finally:
        cluster.destroy()
    print()
    print(figures_table(figures))


if __name__ == "__main__":
    main()
