"""Benchmark of the spent_amount trigger (0025, as 0027 leaves it) against the trigger a user would write instead.

    python benchmarks/trigger.py [--scale 1.0] [--rows 5000] [--heavy 2000] [--bulk 100000] [--runs 3] [--segments 4]

At scale 1 it seeds 100,000 users (≈5,000,000 transactions) with --corrupt and gives daily_plan 0023's
precondition (duplicates merged into one row per (user, day, category), dates at midnight UTC, the unique key
uq_daily_plan_user_date_category). Then, in the same run, in three modes — no trigger ("none"); ours (0025's
and 0027's SQL files, as a database at head has them: additive deltas); and the template (the seed checklist's
0025 template, the trigger a user would otherwise write: on every change it recomputes the day's SUM of the
key's live transactions and writes it into the plan row, with the best index there is) — medians of `--runs`:
 (a) light users: 2 concurrent clients, each making `--rows` single-row INSERTs in autocommit, on keys whose
     plan row exists (a day's later spending) → rows/s;
 (b) light users, on keys without a plan row yet (the first spending of a key, as 86 % of the seed's are);
 (h) heavy users: the same, every client on one key of its own that already holds `--heavy` transactions
     (thousands in one day and category: an import, a shop's account), where the template's SUM grows;
 (c) one `INSERT … SELECT` of `--bulk` rows from generate_series over the clients' keys (10 a key by default);
 (d) (a) once more the way spent_amount was kept before 0025, without a trigger: each INSERT followed by the
     application's own UPDATE of the plan row, in one transaction.
 (a), (b) and (h) are measured twice: with the throw-away cluster's durability off (fsync, full_page_writes and
synchronous_commit off: a commit costs CPU only, the triggers' worst case) and with production's settings (all
three on: every autocommit INSERT waits for its WAL on disk, as the application's do), switched by ALTER SYSTEM
and a reload between the two.
The clients connect like the tool does (no server-side prepared statements, as behind a pooler) and keep
their connections throughout, as an application's pool does. A machine shared with other work makes wall times
drift by a factor of 2 within a minute, so the single-row measures alternate their modes in `--segments` short
segments per run (in rotated order, each mode on the same keys) and (c) alternates its order from run to run; a
run's ratio is that of neighbours. Beside the wall time, the CPU time of the server processes that served the
clients (from /proc, when readable) is reported per row: it depends much less on what else the machine runs.
Inserted transactions are removed with triggers off (plan rows keep their values) and the tables vacuumed between
measures. Reported: ours/none, template/none and ours/template (rows/s ratios, the median of the runs'). Goal:
ours ≥ the template for light users (ours/template ≥ 1) and ≥ 2× for heavy ones. (The former goal of ≥ 0.85 of
no trigger is retired: the plan-row write it cannot avoid is the trigger's purpose.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the throw-away clusters

from common import Figure, alone  # noqa: E402

import mita_integrity  # noqa: E402
from mita_integrity.database.connection import Database, connect  # noqa: E402

SQL_DIR = Path(mita_integrity.__file__).parent / "migrations" / "sql"
# ours as a database at head has it: 0025's file, then 0027's; removed by 0027's down file, then 0025's
OURS = ("0025_daily_plan_spent_trigger.sql", "0027_harden_spent_trigger.sql")
NONE = ("0027_harden_spent_trigger_down.sql", "0025_daily_plan_spent_trigger_down.sql")
GOAL_LIGHT, GOAL_HEAVY = 1.0, 2.0  # ours/template
CLIENTS = 2
TAG = "bench-trigger"  # transactions.merchant of every row the benchmark inserts (removed after each measure)
HEAVY_TAG = "bench-trigger-heavy"  # the heavy keys' standing transactions (kept until the end)

# The seed checklist's 0025 template, as a user would write it: every change recomputes the SUM of the key's
# live transactions and writes it into the plan row (for OLD's key and NEW's). Given its best chance: the day as
# a range on spent_at, served by ix_transactions_user_id_spent_at, and the plan row by the unique key.
TEMPLATE = """
CREATE OR REPLACE FUNCTION update_daily_plan_spent() RETURNS trigger LANGUAGE plpgsql AS $function$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT OLD.user_id AS user_id, OLD.spent_at AS spent_at, OLD.category AS category
              WHERE TG_OP <> 'INSERT'
             UNION
             SELECT NEW.user_id, NEW.spent_at, NEW.category WHERE TG_OP <> 'DELETE' LOOP
        CONTINUE WHEN r.spent_at IS NULL OR r.user_id IS NULL;
        INSERT INTO daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
        SELECT r.user_id, date_trunc('day', r.spent_at, 'UTC'), r.category, 0, coalesce(sum(t.amount), 0), now()
          FROM transactions t
         WHERE t.user_id = r.user_id AND t.category IS NOT DISTINCT FROM r.category AND t.deleted_at IS NULL
           AND t.spent_at >= date_trunc('day', r.spent_at, 'UTC')
           AND t.spent_at < date_trunc('day', r.spent_at, 'UTC') + interval '1 day'
        ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
        DO UPDATE SET spent_amount = EXCLUDED.spent_amount;
    END LOOP;
    RETURN NULL;
END
$function$;
DROP TRIGGER IF EXISTS trg_transactions_daily_plan_spent ON transactions;
CREATE TRIGGER trg_transactions_daily_plan_spent AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION update_daily_plan_spent();
"""

PRECONDITION = """
CREATE TEMP TABLE merged ON COMMIT DROP AS
SELECT user_id, date_trunc('day', date, 'UTC') AS date, category,
       (array_agg(plan_json ORDER BY created_at, id))[1] AS plan_json, min(created_at) AS created_at,
       max(planned_amount) AS planned_amount, sum(spent_amount) AS spent_amount, max(daily_budget) AS daily_budget,
       (array_agg(status ORDER BY created_at, id))[1] AS status
  FROM daily_plan GROUP BY 1, 2, 3;
TRUNCATE daily_plan;
INSERT INTO daily_plan (user_id, date, plan_json, created_at, category, planned_amount, spent_amount, daily_budget,
                        status)
SELECT user_id, date, plan_json, created_at, category, planned_amount, spent_amount, daily_budget, status FROM merged;
ALTER TABLE daily_plan ADD CONSTRAINT uq_daily_plan_user_date_category
    UNIQUE NULLS NOT DISTINCT (user_id, date, category);
DROP INDEX idx_daily_plan_user_date_category;  -- as 0023 does: the unique key's index serves both
DROP INDEX ix_daily_plan_user_id;
"""

INSERT = ("INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, merchant) "
          "VALUES (%s, %s, %s, %s, 'USD', %s, now(), %s)")
# what the application ran itself before 0025, after each INSERT (in its transaction): add to the day's plan row
APP_UPDATE = ("UPDATE daily_plan SET spent_amount = coalesce(spent_amount, 0) + %s WHERE user_id = %s "
              "AND date = date_trunc('day', %s::timestamptz, 'UTC') AND category = %s")


@dataclass
class Sample:
    """One timed piece of work: wall seconds and the CPU seconds of the server processes that did it."""

    seconds: float = 0.0
    cpu: float | None = 0.0

    def __add__(self, other: Sample) -> Sample:
        cpu = None if self.cpu is None or other.cpu is None else self.cpu + other.cpu
        return Sample(self.seconds + other.seconds, cpu)


def backend_cpu(pid: int) -> float | None:
    """Gives the CPU seconds (user + system) a server process used so far, or None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_used(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def precondition(db: Database) -> int:
    """Gives daily_plan 0023's shape (one row per key, dates at midnight UTC, the unique key); gives its rows."""
    with connect(db) as conn:
        conn.execute(PRECONDITION.encode())
        rows = conn.execute("SELECT count(*) FROM daily_plan").fetchone()
        conn.commit()
    with connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE daily_plan")
    return int(rows[0]) if rows else 0


def keys(db: Database, n: int) -> list[tuple[Any, ...]]:
    """Gives n (user_id, date, category) keys of existing plan rows, random but the same every time; and keeps them
    as table bench_keys (n, user_id, date, category) for the bulk insert."""
    with connect(db) as conn:
        conn.execute("SELECT setseed(0.25)")
        conn.execute("CREATE TABLE bench_keys AS SELECT row_number() OVER () - 1 AS n, user_id, date, category "
                     "FROM (SELECT user_id, date, category FROM daily_plan WHERE category IS NOT NULL "
                     "ORDER BY random() LIMIT %s) k", (n,))
        rows = conn.execute("SELECT user_id, date, category FROM bench_keys ORDER BY n").fetchall()
        conn.commit()
    return rows


def set_durable(db: Database, on: bool) -> None:
    """Turns the server's durability on (fsync, full_page_writes, synchronous_commit: production's settings, so
    every commit waits for its WAL on disk) or off (the throw-away cluster's: commits cost CPU only)."""
    with connect(db, autocommit=True) as conn:
        for name in ("fsync", "full_page_writes", "synchronous_commit"):
            conn.execute(f"ALTER SYSTEM SET {name} = {'on' if on else 'off'}")  # type: ignore[arg-type]
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("CHECKPOINT")
    time.sleep(0.5)  # every backend has read the configuration again


def set_trigger(db: Database, mode: str) -> None:
    """Installs ours ("on": 0025's and 0027's files), the template ("template"), or no trigger (anything else)."""
    with connect(db) as conn:
        for name in NONE:
            conn.execute((SQL_DIR / name).read_text(encoding="utf-8").encode())
        if mode == "on":
            for name in OURS:
                conn.execute((SQL_DIR / name).read_text(encoding="utf-8").encode())
        elif mode == "template":
            conn.execute(TEMPLATE.encode())
        conn.commit()


def heavy_keys(db: Database, keyset: list[tuple[Any, ...]], per_key: int) -> list[tuple[Any, ...]]:
    """Gives CLIENTS keys of users the light clients do not use, each given `per_key` standing transactions
    (inserted without a trigger, the plan row set to their sum)."""
    users = {k[0] for k in keyset}
    with connect(db) as conn:
        conn.execute("SELECT setseed(0.5)")
        rows = conn.execute("SELECT user_id, date, category FROM daily_plan WHERE category IS NOT NULL "
                            "AND NOT (user_id = ANY(%s)) ORDER BY random() LIMIT 50", (list(users),)).fetchall()
        picked: list[tuple[Any, ...]] = []
        for row in rows:
            if len(picked) < CLIENTS and row[0] not in {p[0] for p in picked}:
                picked.append(row)
        for user, day, category in picked:
            conn.execute("INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, "
                         "merchant) SELECT gen_random_uuid(), %s, %s, 1 + i %% 100, 'USD', "
                         "%s + interval '1 second' * (i %% 86000), now(), %s FROM generate_series(1, %s) i",
                         (user, category, day, HEAVY_TAG, per_key))
            conn.execute("UPDATE daily_plan SET spent_amount = (SELECT sum(amount) FROM transactions "
                         "WHERE user_id = %s AND category = %s AND spent_at >= %s AND spent_at < %s + interval '1 day' "
                         "AND deleted_at IS NULL) WHERE user_id = %s AND date = %s AND category = %s",
                         (user, category, day, day, user, day, category))
        conn.commit()
    with connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE transactions")
    return picked


def clean(db: Database) -> None:
    """Removes the rows the benchmark inserted, triggers off (so plan rows stay as they are), and vacuums."""
    with connect(db, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM transactions WHERE merchant = %s", (TAG,))
        conn.execute("RESET session_replication_role")
        conn.execute("VACUUM ANALYZE transactions")
        conn.execute("VACUUM ANALYZE daily_plan")
        conn.execute("CHECKPOINT")


def clients(conns: list[psycopg.Connection], batches: list[list[tuple[Any, ...]]], *, app: bool = False) -> Sample:
    """Runs one client per batch on its own connection (autocommit, one INSERT per row), all together. With app,
    each INSERT is followed by the plan row's UPDATE in one transaction, as the application did before 0025."""
    ready = threading.Barrier(len(batches) + 1)
    errors: list[BaseException] = []
    cpu: list[float | None] = []

    def client(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
        try:
            pid = conn.info.backend_pid
            ready.wait()
            before = backend_cpu(pid)
            for row in rows:
                if app:
                    with conn.transaction():
                        conn.execute(INSERT, row)
                        conn.execute(APP_UPDATE, (row[3], row[1], row[4], row[2]))
                else:
                    conn.execute(INSERT, row)
            cpu.append(cpu_used(before, backend_cpu(pid)))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=client, args=(conn, b)) for conn, b in zip(conns, batches, strict=True)]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Sample(seconds, None if None in cpu else sum(c for c in cpu if c is not None))


def bulk(db: Database, rows: int) -> Sample:
    """One INSERT … SELECT of `rows` rows over the bench keys (a few rows per key)."""
    with connect(db, autocommit=True) as conn:
        nkeys = conn.execute("SELECT count(*) FROM bench_keys").fetchone()
        before = backend_cpu(conn.info.backend_pid)
        started = time.perf_counter()
        conn.execute("INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, "
                     "merchant) SELECT gen_random_uuid(), k.user_id, k.category, (1 + i %% 5000) / 100.0, 'USD', "
                     "k.date + (i %% 86000) * interval '1 second', now(), %s "
                     "FROM generate_series(1, %s) i JOIN bench_keys k ON k.n = i %% %s",
                     (TAG, rows, nkeys[0] if nkeys else 1))
        seconds = time.perf_counter() - started
        return Sample(seconds, cpu_used(before, backend_cpu(conn.info.backend_pid)))


def batches_for(keyset: list[tuple[Any, ...]], per_client: int, part: slice,
                shift: timedelta) -> list[list[tuple[Any, ...]]]:
    """Gives each client its rows: its share of the keys (the part `part` of it), spent at noon of the key's day
    moved by `shift`."""
    out = []
    for c in range(CLIENTS):
        mine = keyset[c * per_client:(c + 1) * per_client][part]
        out.append([(uuid.uuid4(), user, category, Decimal(100 + i % 5000) / 100, day + shift + timedelta(hours=12),
                     TAG) for i, (user, day, category) in enumerate(mine)])
    return out


def heavy_batches(heavy: list[tuple[Any, ...]], rows: int) -> list[list[tuple[Any, ...]]]:
    """Gives each client `rows` rows, all in its own heavy key."""
    return [[(uuid.uuid4(), user, category, Decimal(100 + i % 5000) / 100, day + timedelta(hours=12, seconds=i % 40000),
              TAG) for i in range(rows)] for user, day, category in heavy]


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--scale", type=float, default=1.0)
    out.add_argument("--rows", type=int, default=5000, help="single-row INSERTs per client, mode and run")
    out.add_argument("--heavy", type=int, default=2000, help="standing transactions in each heavy user's key")
    out.add_argument("--bulk", type=int, default=100_000, help="rows of the INSERT … SELECT")
    out.add_argument("--runs", type=int, default=3)
    out.add_argument("--segments", type=int, default=4, help="alternations of the single-row measures per run")
    return out


def measure(db: Database, args: argparse.Namespace) -> list[Figure]:
    """Gives db 0023's shape and measures the writers of transactions: no trigger, ours, the template."""
    started = time.perf_counter()
    plan_rows = precondition(db)
    keyset = keys(db, CLIENTS * args.rows)
    if len(keyset) < CLIENTS * args.rows:
        raise SystemExit("not enough plan rows for --rows: raise --scale")
    heavy = heavy_keys(db, keyset, args.heavy)
    print(f"  precondition (0023's shape, {plan_rows:,} plan rows) in {time.perf_counter() - started:.1f} s; "
          f"{len(keyset):,} existing keys for the clients; {len(heavy)} heavy keys of {args.heavy:,} transactions",
          flush=True)

    # the clients' connections live through the whole benchmark, as an application's pooled ones do
    conns = [connect(db, autocommit=True) for _ in range(CLIENTS)]
    runs: list[dict[tuple[str, str], Sample]] = []
    step = -(-args.rows // args.segments)
    fresh = iter(range(1, 1_000_000))  # new days for every segment of (b)
    for run in range(args.runs):
        got: dict[tuple[str, str], Sample] = {}
        for durable in (False, True):
            set_durable(db, durable)
            for name, modes in (("existing", ["off", "on", "template", "app"]), ("new", ["off", "on", "template"]),
                                ("heavy", ["off", "on", "template"])):
                key = f"durable {name}" if durable else name
                for s in range(args.segments):
                    part = slice(s * step, (s + 1) * step)  # every mode inserts on the same keys
                    for mode in modes[s % len(modes):] + modes[:s % len(modes)]:  # rotated: no mode always first
                        set_trigger(db, mode)
                        if name == "heavy":
                            batches = heavy_batches(heavy, len(range(args.rows)[part]))
                        else:
                            shift = timedelta(0) if name == "existing" else timedelta(days=1000 + 100 * next(fresh))
                            batches = batches_for(keyset, args.rows, part, shift)
                        got[(key, mode)] = got.get((key, mode), Sample()) + clients(conns, batches, app=mode == "app")
                clean(db)
        set_durable(db, False)
        order = ("off", "on", "template")
        for mode in order[run % 3:] + order[:run % 3]:
            set_trigger(db, mode)
            got[("bulk", mode)] = bulk(db, args.bulk)
            clean(db)
        runs.append(got)
        line = ", ".join(f"{name} {got[(name, 'off')].seconds:.2f} / {got[(name, 'on')].seconds:.2f} / "
                         f"{got[(name, 'template')].seconds:.2f} s"
                         for name in ("existing", "new", "heavy", "durable existing", "durable new", "durable heavy",
                                      "bulk"))
        print(f"  run {run + 1} (none / ours / template): {line}; the app's own UPDATE instead "
              f"{got[('existing', 'app')].seconds:.2f} s; load average {loadavg()}", flush=True)
    for conn in conns:
        conn.close()
    set_trigger(db, "on")
    with connect(db) as conn:
        probe = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'trg_transactions_daily_plan_spent'")
        assert (probe.fetchone() or (0,))[0] == 1

    single = CLIENTS * args.rows

    def rate(name: str, mode: str) -> float:
        n = args.bulk if name == "bulk" else single
        return statistics.median(n / r[(name, mode)].seconds for r in runs)

    def ratio(name: str, mode: str, base: str) -> float:
        """The median over runs of rows/s of `mode` ÷ rows/s of `base`, measured side by side."""
        return statistics.median(r[(name, base)].seconds / r[(name, mode)].seconds for r in runs)

    def cpu(name: str, mode: str) -> str:
        n = args.bulk if name == "bulk" else single
        used = [r[(name, mode)].cpu for r in runs]
        return "n/a" if None in used else f"{statistics.median(u for u in used if u is not None) / n * 1e6:.0f}"

    who = {"existing": "light users, plan row exists", "new": "light users, first of its key",
           "heavy": f"heavy users, {args.heavy:,} transactions in the key"}
    labels = {name: f"trigger: 2 clients, 1-row INSERTs, {text} (durability off)" for name, text in who.items()}
    labels |= {f"durable {name}": f"trigger: 2 clients, 1-row INSERTs, {text} (durable commits)"
               for name, text in who.items()}
    labels["bulk"] = f"trigger: INSERT … SELECT of {args.bulk:,} rows"
    figures = []
    for name, label in labels.items():
        goal = GOAL_HEAVY if name.endswith("heavy") else None if name == "bulk" else GOAL_LIGHT
        figures.append(Figure(f"{label}, ours/none, rows/s", f"{rate(name, 'on'):,.0f}",
                              f"none {rate(name, 'off'):,.0f}", f"{ratio(name, 'on', 'off'):.2f}"))
        figures.append(Figure(f"{label}, template/none, rows/s", f"{rate(name, 'template'):,.0f}",
                              f"none {rate(name, 'off'):,.0f}", f"{ratio(name, 'template', 'off'):.2f}"))
        ours_template = ratio(name, "on", "template")
        figures.append(Figure(f"{label}, ours/template, rows/s", f"{rate(name, 'on'):,.0f}",
                              f"template {rate(name, 'template'):,.0f}", f"{ours_template:.2f}",
                              f"≥ {goal:.2f}" if goal else "", ours_template >= goal if goal else None))
        if not name.startswith("durable"):
            figures.append(Figure(f"{label}, server CPU µs/row (ours)", cpu(name, "on"),
                                  f"none {cpu(name, 'off')}, template {cpu(name, 'template')}"))
    figures.append(Figure("trigger vs the app's own UPDATE of the plan row (before 0025), rows/s",
                          f"{rate('existing', 'on'):,.0f}", f"app's UPDATE {rate('existing', 'app'):,.0f}",
                          f"{ratio('existing', 'on', 'app'):.2f}"))
    return figures


def main() -> None:
    alone("trigger", parser(), measure,
          "ratio: throughput of one mode ÷ the other's (rows/s): ours (0025 + 0027), the template (a SUM on every\n"
          "change), none (no trigger); the app's own UPDATE: without a trigger, each INSERT followed by the\n"
          "application's UPDATE of the plan row in one transaction, the way spent_amount was kept before 0025.")


if __name__ == "__main__":
    main()
