"""Every figure the project promises, in one run and one table: each against a baseline measured in that run.

    python benchmarks/run.py [--scale 1.0] [--runs 3] [--markdown FILE]

It starts a throw-away PostgreSQL 16 (the embedded one), builds the dataset once — `seed` of
int(100,000 × scale) users × 30 days with every defect (≈5,000,000 transactions at scale 1), timed against
the floor of a plain INSERT — and clones it (CREATE DATABASE … TEMPLATE) for each benchmark that changes
it. Then, as benchmarks/seed.py, check.py, fix.py, migrate.py and trigger.py do one by one (their docstrings
say exactly what each measures): the check against its floor and the naive way, and its peak memory; the
repair of injected orphans and duplicates under a concurrent writer, and its undo; each migration 0022–0026
under a concurrent writer, against the naive DDL; the spent_amount trigger's cost to the writers of transactions,
against no trigger and against the template a user would write instead (goal: ours ≥ the template for light
users, ≥ 2× for heavy ones; the former ≥ 0.85 of no trigger is retired).
`--scale 0.1` is the quick run (a few minutes). `--markdown FILE` also writes the table, with the machine
it ran on, as Markdown (how BENCHMARKS.md is made).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

import check  # noqa: E402
import fix  # noqa: E402
import migrate  # noqa: E402
import seed  # noqa: E402
import trigger  # noqa: E402
from common import Figure, cluster, figures_table  # noqa: E402

from mita_integrity.database.connection import Database, connect  # noqa: E402


def clone(admin: Database, source: Database, name: str) -> Database:
    """Gives a copy of source (nobody may be connected to it while it is copied)."""
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source.dbname}" STRATEGY FILE_COPY')  # type: ignore
    return admin.with_dbname(name)


def drop(admin: Database, db: Database) -> None:
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db.dbname}" WITH (FORCE)')  # type: ignore[arg-type]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}){memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start")


def markdown(figures: list[Figure], header: list[str]) -> str:
    rows = ["| measure | value | baseline (same run) | ratio | goal | met |", "|---|---:|---:|---:|---|---|"]
    rows += [f"| {f.measure} | {f.value} | {f.baseline} | {f.ratio} | {f.goal} | "
             f"{'' if f.met is None else 'yes' if f.met else '**NO**'} |" for f in figures]
    return "\n".join(header) + "\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 users, ≈5,000,000 transactions")
    parser.add_argument("--runs", type=int, default=3, help="runs per measure; medians are reported")
    parser.add_argument("--markdown", type=Path, help="also write the table and the machine to this file")
    args = parser.parse_args()
    scale = ["--scale", str(args.scale)]
    started = time.perf_counter()
    header = [f"- when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", f"- machine: {machine()}"]
    figures: list[Figure] = []
    with cluster() as c:
        admin = Database.from_url(c.url)
        header += [f"- server: PostgreSQL {c.version} (throw-away cluster of the embedded wheel)",
                   f"- command: python benchmarks/run.py --scale {args.scale:g} --runs {args.runs}"]
        print("\n".join(header), flush=True)
        print("== seed (the dataset, built once)", flush=True)
        got, db = seed.measure(admin, seed.parser().parse_args(scale))
        figures += got
        with connect(db, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        copies = {name: clone(admin, db, f"bench_{name}") for name in ("fix", "migrate", "trigger")}
        print("== check", flush=True)
        figures += check.measure(db, check.parser().parse_args([*scale, "--runs", str(args.runs)]))
        drop(admin, db)
        print("== fix and undo", flush=True)
        figures += fix.measure(copies["fix"], fix.parser().parse_args(scale))
        drop(admin, copies["fix"])
        print("== migrate 0022 … 0026", flush=True)
        figures += migrate.measure(copies["migrate"], migrate.parser().parse_args(scale))
        drop(admin, copies["migrate"])
        print("== trigger", flush=True)
        figures += trigger.measure(copies["trigger"], trigger.parser().parse_args([*scale, "--runs", str(args.runs)]))
    header.append(f"- took: {(time.perf_counter() - started) / 60:.1f} min")
    print()
    print(figures_table(figures))
    print(f"\n{sum(f.met is True for f in figures)} goals met, {sum(f.met is False for f in figures)} missed; "
          f"{header[-1][2:]}")
    if args.markdown:
        args.markdown.write_text(markdown(figures, header), encoding="utf-8")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
