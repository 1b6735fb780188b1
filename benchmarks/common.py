"""What every benchmark shares: a throw-away PostgreSQL 16, seeded databases, medians, peak memory."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mita_integrity.database import embedded
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url
from mita_integrity.migration import command as migrate
from tests.support.pgcluster import Cluster, start_cluster

ROOT = Path(__file__).resolve().parents[1]
BENCH_SETTINGS = {"max_parallel_workers_per_gather": "2", "work_mem": "64MB", "maintenance_work_mem": "512MB"}


@contextmanager
def cluster() -> Iterator[Cluster]:
    """Gives a running throw-away cluster of the embedded PostgreSQL 16, removed afterwards."""
    c = start_cluster(embedded.bin_dir(), settings=BENCH_SETTINGS)
    try:
        yield c
    finally:
        c.destroy()


def seeded(c: Cluster, name: str, users: int, *, days: int = 30, seed: int = 7) -> tuple[Database, float, int]:
    """Gives a new database migrated to the baseline and seeded with --corrupt; and the seconds and rows."""
    from mita_integrity.seed import SeedOptions, seed_database

    admin = Database.from_url(c.url)
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = admin.with_dbname(name)
    migrate.upgrade(db, migrate.BASELINE)
    with connect(db) as conn:
        result = seed_database(conn, SeedOptions(users=users, days=days, seed=seed, corrupt=True))
    with connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return db, result.seconds, sum(result.rows.values())


def url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def median_seconds(work: Callable[[], object], runs: int = 3) -> float:
    """Gives the median wall time of `runs` runs of work."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved(works: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Gives the median seconds of each work over `runs` rounds; each round runs every work once.

    The machines are shared and their speed drifts within a minute: run back to back, a figure and its
    baseline would be measured under different loads. Interleaved (and in a rotating order, so none is
    always first after another's cache effects), they share the drift. Each work gives its own seconds.
    """
    names = list(works)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(works[name]())
    return {name: statistics.median(values) for name, values in times.items()}


def timed(work: Callable[[], object]) -> Callable[[], float]:
    """Gives a work that runs work and gives its wall seconds (for interleaved)."""
    def run() -> float:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    return run


@dataclass(frozen=True)
class Watched:
    """One command run in a fresh watcher process: its wall time, peak resident memory and exit code."""

    seconds: float
    rss_mb: float
    code: int


def watched(args: list[str]) -> Watched:
    """Runs a command under a watcher process; gives its wall seconds, peak resident memory (MB), exit code."""
    watcher = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "p = subprocess.run(sys.argv[1:], capture_output=True); t = time.perf_counter() - t; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode, t)")
    out = subprocess.run([sys.executable, "-c", watcher, *args], capture_output=True, text=True, check=True).stdout
    kilobytes, code, seconds = out.split()
    return Watched(float(seconds), int(kilobytes) / 1024, int(code))


def peak_rss_mb(args: list[str]) -> tuple[float, int]:
    """Runs a command in a fresh watcher process; gives the command's peak resident memory (MB) and exit code."""
    watcher = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)")
    out = subprocess.run([sys.executable, "-c", watcher, *args], capture_output=True, text=True, check=True).stdout
    kilobytes, code = out.split()
    return int(kilobytes) / 1024, int(code)


def mita(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("mita-integrity")), *args]


def table(rows: Sequence[tuple[str, ...]]) -> str:
    """Gives rows as an aligned plain-text table (first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    def line(row: tuple[str, ...]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(cells))

    lines = [line(r) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass(frozen=True)
class Figure:
    """One promised figure: its value, the baseline measured in the same run, their ratio, the goal and whether
    it was met (None: no goal)."""

    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""
    met: bool | None = None


def figures_table(figures: list[Figure]) -> str:
    """Gives figures as one aligned table."""
    rows = [("measure", "value", "baseline (same run)", "ratio", "goal", "met")]
    rows += [(f.measure, f.value, f.baseline, f.ratio, f.goal, "" if f.met is None else "yes" if f.met else "NO")
             for f in figures]
    return table(rows)


def alone(name: str, parser: argparse.ArgumentParser, measure: Callable[[Database, argparse.Namespace], list[Figure]],
          footnote: str = "") -> None:
    """Runs one benchmark on its own: a throw-away cluster, a database seeded at --scale, its figures as a table."""
    args = parser.parse_args()
    with cluster() as c:
        users = int(100_000 * args.scale)
        db, seed_s, rows = seeded(c, f"bench_{name}", users)
        print(f"PostgreSQL {c.version}, scale {args.scale:g}: {users:,} users, {rows:,} rows seeded in {seed_s:.1f} s",
              flush=True)
        figures = measure(db, args)
    print()
    print(figures_table(figures))
    if footnote:
        print(footnote)
