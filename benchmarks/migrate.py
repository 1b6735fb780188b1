"""Benchmark of the migrations 0022–0026: what a concurrent writer waits while each one runs, against the naive DDL.

    python benchmarks/migrate.py [--scale 1.0]

At scale 1 it seeds 100,000 users (≈5,000,000 transactions) with --corrupt on the baseline schema. A writer in a
process of its own writes all the time, one autocommit statement every ~10 ms, in turn: an INSERT of a
transaction for an existing user, an UPDATE of an existing transaction's amount (to itself), an INSERT of a plan
row at midnight UTC for an existing user when that (user, day, category) has none (ON CONFLICT DO NOTHING once
0023's key exists), an UPDATE of an existing plan row's planned_amount (to itself). Each statement is timed
(lock_timeout 30 s, so a long wait is measured, not an error), tagged with the phase it started in, and what its
backend waited on is sampled from pg_stat_activity every ~2 ms (Lock:relation, IO:…, CPU). Phases: the writer
alone for 5 s (the baseline); `migrate.upgrade` to each of 0022 … 0026 in turn — clean-up, backfill and
validation included; then on the migrated database the naive way, for comparison: the transactions foreign key
dropped and added again by one plain ALTER TABLE (no NOT VALID: the whole validation scan under a lock that
blocks writers), and a plain `ADD CONSTRAINT ck_bench CHECK` (dropped after). Goal: the writer's longest wait
during the online migrations ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

from common import Figure, alone  # noqa: E402

from mita_integrity.database.connection import Database, connect  # noqa: E402
from mita_integrity.migration import command as migrate  # noqa: E402

GOAL_WAIT_S = 0.1
TICK_S = 0.01
REVISIONS = ("0022_add_missing_fk_constraints", "0023_add_unique_constraint_daily_plan", "0024_add_check_constraints",
             "0025_add_daily_plan_spent_trigger", "0026_complete_user_foreign_keys")
BASELINE = "baseline (writer alone)"
FK = "FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE"
NAIVE = (("plain DROP fk_transactions_user_id", "DROP CONSTRAINT fk_transactions_user_id"),  # restored by the next
         ("naive ADD FOREIGN KEY", f"ADD CONSTRAINT fk_transactions_user_id {FK}"),
         ("naive ADD CHECK", "ADD CONSTRAINT ck_bench CHECK (amount > -1e12)"),
         ("plain DROP ck_bench", "DROP CONSTRAINT ck_bench"))
CATEGORIES = ("food", "groceries", "transport", "shopping", "health")
WATCH_SQL = """SELECT coalesce(w.wait_event_type || ':' || w.wait_event, 'CPU'),
  (SELECT left(regexp_replace(o.query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity o WHERE o.state = 'active'
      AND o.pid NOT IN (w.pid, pg_backend_pid()) AND o.backend_type <> 'parallel worker' ORDER BY o.query_start LIMIT 1)
  FROM pg_stat_activity w WHERE w.pid = %s AND w.state = 'active'"""
STATEMENTS = (
    ("INSERT transactions", "INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) "
     "VALUES (gen_random_uuid(), %(user)s, %(category)s, %(amount)s, 'USD', "
     "now() - make_interval(mins => %(minutes)s), now())"),
    ("UPDATE transactions", "UPDATE transactions SET amount = amount WHERE id = %(tx)s"),
    ("INSERT daily_plan", "INSERT INTO daily_plan (user_id, date, category, planned_amount, spent_amount, created_at) "
     "SELECT %(user)s::uuid, k.day, %(category)s::varchar, %(amount)s::numeric, 0, now() "
     "FROM (SELECT date_trunc('day', now(), 'UTC') - make_interval(days => %(days)s) AS day) k "
     "WHERE NOT EXISTS (SELECT 1 FROM daily_plan p WHERE p.user_id = %(user)s AND p.date = k.day "
     "AND p.category = %(category)s) ON CONFLICT DO NOTHING"),
    ("UPDATE daily_plan", "UPDATE daily_plan SET planned_amount = planned_amount WHERE id = %(plan)s"),
)


def sample_ids(db: Database, n: int) -> list[list[Any]]:
    """Gives up to n ids each of users, transactions and daily_plan rows that exist now."""
    with connect(db) as conn:
        return [[r[0] for r in conn.execute(f"SELECT id FROM {name} TABLESAMPLE SYSTEM (10) LIMIT %s", (n,))]
                for name in ("users", "transactions", "daily_plan")]


class Said:
    """Stands in for stderr: passes the migrations' progress lines through and remembers when each came."""

    def __init__(self, inner: Any):
        self.inner, self.lines = inner, [(time.perf_counter(), "start")]

    def write(self, text: str) -> int:
        self.lines += [(time.perf_counter(), line.strip()) for line in text.splitlines() if line.strip()]
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()

    def around(self, started: float, ended: float) -> str:
        before = [line for t, line in self.lines if t <= started][-1]
        after = next((line for t, line in self.lines if t >= ended), "")
        return f'after "{before[:70]}"' + (f', before "{after[:70]}"' if after else "")


def watch(db: Database, pid: int, seen: list[Counter[str]], stop: Any) -> None:
    """Samples every ~2 ms what the writer's backend waits on (a lock, I/O, CPU), and the oldest other statement."""
    with connect(db, autocommit=True) as conn:
        while not stop.wait(0.002):
            row = conn.execute(WATCH_SQL, (pid,)).fetchone()
            if row:
                seen[0][row[0]] += 1
                seen[1][row[1] or "nothing"] += 1


class Writer:
    """A process of its own, like the application (the migration's Python cannot stall it): every ~10 ms one
    statement of STATEMENTS in turn (autocommit), timed and tagged with the phase it started in."""

    def __init__(self, db: Database, names: list[str]):
        ctx = multiprocessing.get_context("fork")
        self.names, self.phase, self.stop = ["idle", *names], ctx.Value("i", 0), ctx.Event()
        self.reports, self.child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=self.run, args=(db, self.child), daemon=True)
        self.waits: dict[str, list[float]] = {}
        self.errors: dict[str, Counter[str]] = {}
        self.worst: dict[str, tuple[float, str, float, str]] = {}  # phase -> (wait, statement, start, waited on)

    def run(self, db: Database, pipe: Any) -> None:  # in the writer's process
        users, tx_ids, plan_ids = sample_ids(db, 20_000)
        pick, seen = random.Random(7), [Counter[str](), Counter[str]()]
        with connect(db, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '30s'")
            threading.Thread(target=watch, args=(db, conn.info.backend_pid, seen, self.stop), daemon=True).start()
            current, waits, errors, worst, i = 0, list[float](), Counter[str](), (0.0, "-", 0.0, "-"), 0
            while True:
                # read once, before the report: the main process may switch or stop as soon as it has it
                now, stopping = self.phase.value, self.stop.is_set()
                if now != current or stopping:  # the phase's report, its last wait included
                    pipe.send((current, waits, errors, worst))
                    current, waits, errors, worst = now, [], Counter(), (0.0, "-", 0.0, "-")
                    if stopping:
                        return
                label, statement = STATEMENTS[i % len(STATEMENTS)]
                i += 1
                params = {"user": pick.choice(users), "tx": pick.choice(tx_ids), "plan": pick.choice(plan_ids),
                          "category": pick.choice(CATEGORIES), "amount": pick.randint(1, 50),
                          "minutes": pick.randint(0, 1440), "days": pick.randint(0, 40)}
                seen[:] = [Counter(), Counter()]
                started = time.perf_counter()
                try:
                    conn.execute(statement, params)  # 0 rows once a clean-up removed the row: fine
                except Exception as exc:  # a violation or a lock timeout is a finding, not a crash
                    errors[type(exc).__name__] += 1
                waits.append(time.perf_counter() - started)
                if waits[-1] > worst[0]:
                    on = ", ".join(f"{event} ×{n}" for event, n in seen[0].most_common(3)) or "not seen in the server"
                    on += f"; meanwhile: {seen[1].most_common(1)[0][0]}" if seen[1] else ""
                    worst = (waits[-1], label, started, on)
                time.sleep(TICK_S)

    def switch(self, name: str) -> None:
        """Tags the statements from now on with name; gives back once the one in flight (maybe blocked) ended."""
        self.phase.value = self.names.index(name)
        self._receive()

    def _receive(self) -> None:
        index, waits, errors, worst = self.reports.recv()
        name = self.names[index]
        self.waits.setdefault(name, []).extend(waits)
        self.errors.setdefault(name, Counter()).update(errors)
        self.worst[name] = max(self.worst.get(name, worst), worst)

    def __enter__(self) -> Writer:
        self.process.start()
        self.child.close()  # ours: so that a writer that died is an EOFError here, not a hang
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._receive()
        self.process.join()

    def summary(self, phase: str) -> str:
        waits, errors = self.waits.get(phase) or [0.0], self.errors.get(phase, Counter())
        p99 = statistics.quantiles(waits, n=100)[98] if len(waits) >= 100 else max(waits)
        kinds = f" ({', '.join(f'{n} {k}' for k, n in errors.items())})" if errors else ""
        _, label, _, on = self.worst.get(phase, (0, "-", 0, "-"))
        return (f"max {max(waits) * 1000:.0f} ms (an {label}, waiting on: {on}), p99 {p99 * 1000:.0f} ms, "
                f"median {statistics.median(waits) * 1000:.1f} ms, {len(waits):,} statements, "
                f"{sum(errors.values())} errors{kinds}")


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--scale", type=float, default=1.0)
    out.add_argument("--baseline-seconds", type=float, default=5.0)
    return out


def measure(db: Database, args: argparse.Namespace) -> list[Figure]:
    """Runs 0022 … 0026 on db (at the baseline) under the writer, then the naive DDL; gives the figures."""
    seconds: dict[str, float] = {}
    with Writer(db, [BASELINE, *REVISIONS, *(name for name, _ in NAIVE)]) as writer:
        said = sys.stderr = Said(sys.stderr)
        try:
            def phase(name: str, work: Callable[[], object]) -> None:
                writer.switch(name)
                started = time.perf_counter()
                work()
                seconds[name] = time.perf_counter() - started
                writer.switch("idle")
                wait, _, at, _ = writer.worst.get(name, (0.0, "", started, ""))
                where = f"; longest {said.around(at, at + wait)}" if name in REVISIONS else ""
                print(f"  {name}: {seconds[name]:.2f} s; writer {writer.summary(name)}{where}", flush=True)

            phase(BASELINE, lambda: time.sleep(args.baseline_seconds))
            for rev in REVISIONS:
                phase(rev, lambda rev=rev: migrate.upgrade(db, rev))
            with connect(db) as conn:
                tx_rows = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
                fk = conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'fk_transactions_user_id'")
                if not (fk.fetchone() or [False])[0]:
                    raise SystemExit("fk_transactions_user_id is missing or NOT VALID after 0026")
            for name, change in NAIVE:
                with connect(db, autocommit=True) as conn:  # no lock_timeout: the plain way
                    phase(name, lambda conn=conn, change=change: conn.execute(f"ALTER TABLE transactions {change}"))
        finally:
            sys.stderr = said.inner
    print(f"  (restored: fk_transactions_user_id {FK} re-added, validated; ck_bench dropped; "
          f"transactions {tx_rows:,} rows)")

    worst = {name: writer.worst.get(name, (0.0,))[0] for name in writer.names}
    alone = worst[BASELINE]
    naive_fk, naive_ck = worst["naive ADD FOREIGN KEY"], worst["naive ADD CHECK"]
    figures = []
    for rev in REVISIONS:
        naive_wait = naive_ck if rev == "0024_add_check_constraints" else naive_fk
        figures.append(Figure(f"migrate {rev[:4]}: the writer's longest wait ({seconds[rev]:.1f} s)",
                              f"{worst[rev] * 1000:,.0f} ms", f"naive DDL {naive_wait * 1000:,.0f} ms",
                              f"{worst[rev] / naive_wait:.2f}", f"≤ {GOAL_WAIT_S * 1000:.0f} ms",
                              worst[rev] <= GOAL_WAIT_S))
    online_worst = max(worst[r] for r in REVISIONS)
    figures.append(Figure("migrate 0022–0026: the writer's longest wait", f"{online_worst * 1000:,.0f} ms",
                          f"writer alone {alone * 1000:,.0f} ms", f"{online_worst / alone:.1f}",
                          f"≤ {GOAL_WAIT_S * 1000:.0f} ms", online_worst <= GOAL_WAIT_S))
    for name, wait in (("naive ADD FOREIGN KEY", naive_fk), ("naive ADD CHECK", naive_ck)):
        figures.append(Figure(f"{name} on transactions ({tx_rows / seconds[name]:,.0f} rows/s validated)",
                              f"{wait * 1000:,.0f} ms", f"writer alone {alone * 1000:,.0f} ms",
                              f"{wait / alone:.1f}"))
    return figures


def main() -> None:
    alone("migrate", parser(), measure)


if __name__ == "__main__":
    main()
