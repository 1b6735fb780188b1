"""`check --incremental`: re-examine only what changed since the last recorded check, or say why not.

How a change is found (no trigger, no replication slot): a row version whose `xmin` is at or above the base
snapshot's xmin was written since the base (or by a transaction that was still running then). The test is
`age(xmin) <= age(base xmin)`, both counted modulo 2^32 from one stable point of the transaction, so every
row written since the base passes it; a very old frozen row (its raw xmin is kept) may pass it too, which
costs work and never hides a change. Per table, one scan counts `changed` (in that range) and `unchanged`;
`lost = rows at the base - unchanged` is exactly how many base rows were updated or deleted since (a row whose
xmin is one the base kept as young, written by a transaction that committed while another was in flight at
the base, is the base's, unchanged; a base that kept none counts such rows as changed, which only makes the
check do more). The partial re-reads
run on the check's connections at once (_evaluate_changed).

Rule by rule (anything else runs in full, with the reason in the report):
- a rule whose tables did not change at all (no changed row, nothing lost, same relfilenode) and that does
  not read the clock keeps the base result (BUD001/BUD002 read the date: only on the base's UTC day);
- a row rule of the catalogue (its own row's values, maybe a LEFT JOIN to a parent) re-evaluates the
  changed rows (by the tids the changes scan collected) and, as far as needed, its base violators: an
  unchanged row keeps its verdict (see _restricted). A joined table must be unchanged, or, for an orphan
  rule, have only gained rows (a parent deleted or re-keyed orphans unchanged children);
- the duplicate rules (DUP001-DUP003) re-read whole only the groups of (the base's violating groups, kept by
  their members' ids) UNION (the keys of the rows written since): see _groups for why that is exact; DUP002
  and DUP003 by their (user, day, category) keys, with BUD001 and BUD002 (incremental_keys.py);
- BUD001, BUD002 and USR003 need the key a row left, which no later snapshot shows: they read it from the
  change log (runs/change_log.py, `changelog install`) when it proves itself complete since the base
  (_log_proof), and re-read only the affected keys (incremental_keys.py, _old_key_rules); otherwise in full,
  with the reason;
- REF011, schema rules, team rules: in full whenever a table they read changed.
Whole-run fallbacks: no base, another catalogue or options, a base older than --max-base-age, a statistics
reset, a table rewritten or truncated (new relfilenode), a base more than 2^31 - margin xids old,
transaction ids lower than the base's (a restore elsewhere), `--since` (its window moves with the clock).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

from .. import __version__
from ..findings import PassTiming, Result, Severity, Status
from ..runs.check_bases import Base, Kept, TableState, load
from . import engine, incremental_keys
from .rule_registry import BY_CODE
from .rules.base import Family, QueryRule, RowRule, Rule, SchemaRule, rel
from .rules.context import CheckContext, Outcome, planner_settings
from .rules.dayboundary import plan_day_sql
from .rules.duplicates import dup001_grouped_sql, dup001_key_sql, dup002_grouped_sql, dup002_members_sql
from .rules.quoting import ident
from .rules.spending import dup003_sql
from .written_since import changed_sql

MAX_BASE_AGE_S = 7 * 86400
XID_MARGIN = 2**31 - 50_000_000  # a base older than this in xids is refused (wraparound distance)
_MASK = 2**32 - 1
_TABLE_REF = re.compile(r'\bpublic\.(?:"((?:[^"]|"")+)"|(\w+))')
_CLOCK = re.compile(r"\b(now|current_date|current_timestamp|localtimestamp|localtime|clock_timestamp|"
                    r"statement_timestamp|transaction_timestamp|timeofday|random)\b", re.IGNORECASE)
# What each grouping rule of the catalogue reads (their SQL is their family's own): checked by a test
# against the tables their statements name.
QUERY_READS: dict[str, tuple[str, ...]] = {
    "DUP001": ("users",), "DUP002": ("daily_plan",), "DUP003": ("transactions",),
    "BUD001": ("daily_plan", "transactions", "users"), "BUD002": ("daily_plan", "transactions", "users"),
    "USR003": ("users", "transactions"),
}
DATE_BOUND = frozenset({"BUD001", "BUD002"})  # their window starts at the current UTC date
# Row rules that read the clock, but whose violations can only end as it moves (spent_at > now() + 1 day): an
# unchanged row that does not violate now did not at the base either, so re-reading the base's violators and
# the changed rows is exact. A rule is listed here only when that holds.
SHRINKING_WITH_TIME = frozenset({"TIM003"})

RunRules = Callable[[Sequence[Rule]], list[Result]]


@dataclass
class Outcome_:
    """How the incremental check went: which base, and per (code, table) how each result was evaluated."""

    mode: str = "full"
    base_run: str | None = None
    reason: str | None = None  # why the whole run is full
    evaluated: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)




def catalogue_fingerprint() -> str:
    """Gives a digest of the tool's version and the rule modules' source: another catalogue, another digest."""
    digest = hashlib.sha256(__version__.encode())
    # every module of rules/, iso4217.py (AMT001's list of currencies) included
    for path in sorted((Path(__file__).parent / "rules").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def option_key(options: dict[str, Any]) -> dict[str, Any]:
    """Gives the options that decide the results (not the output's): a base must have been run with these."""
    # sample too: a kept result shows the base's sample rows, as many as the base's --sample asked for
    keys = ("since", "budget_days", "day_boundary", "select", "ignore", "no_guarantees", "physical",
            "exclude_tables", "sample")
    return {k: options.get(k) for k in keys}


def _severity(code: str) -> Severity:
    """Gives a stored result's severity: the catalogue's (a team rule's base result is never reused: its SQL
    runs in full every time, so any severity serves)."""
    return BY_CODE[code].severity if code in BY_CODE else next(iter(BY_CODE.values())).severity


def reads(rule: Rule) -> tuple[str, ...] | None:
    """Gives the tables a catalogue rule reads, or None when that is not known (a team rule, a schema rule)."""
    if rule.code not in BY_CODE or isinstance(rule, SchemaRule):
        return None
    if isinstance(rule, RowRule):
        return tuple(dict.fromkeys([str(rule.table), *(n for _, n in _named(rule))]))
    if isinstance(rule, QueryRule) and rule.code in QUERY_READS and rule.table:
        own = (rule.table,) if rule.table else ()
        return tuple(dict.fromkeys([*own, *QUERY_READS[rule.code]]))
    return None


def _named(rule: RowRule) -> list[tuple[str, str]]:
    text = " ".join([rule.predicate, *(j.source for j in rule.joins)])
    return [("", quoted.replace('""', '"') or plain) for quoted, plain in _TABLE_REF.findall(text)]


def _now(cur: psycopg.Cursor[Any]) -> tuple[str, int, int, int, datetime | None, date]:
    cur.execute("""SELECT pg_current_snapshot()::text, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                          pg_snapshot_xmax(pg_current_snapshot())::text::bigint, d.oid::bigint, s.stats_reset,
                          (now() AT TIME ZONE 'UTC')::date
                     FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
                    WHERE d.datname = current_database()""")
    row = cur.fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], row[5]


State = tuple[int, int, str, tuple[int, int, int], str]


def _states(cur: psycopg.Cursor[Any], tables: Sequence[str]) -> dict[str, State]:
    """Gives per table (oid, relfilenode, relkind, counters, shape); a table with children is marked 'c', one
    under row-level security for this role 's'."""
    cur.execute("""SELECT c.relname, c.oid::bigint, c.relfilenode::bigint,
                          CASE WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) THEN 'c'
                               -- a policy decides which rows this role reads, and can change without a row
                               WHEN c.relkind = 'r' AND row_security_active(c.oid) THEN 's'
                               ELSE c.relkind::text END,
                          coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0),
                          (SELECT md5(string_agg(concat_ws(':', a.attnum, a.attname, a.atttypid, a.atttypmod,
                                                           a.attnotnull, a.attisdropped, a.atthasmissing,
                                                           a.attmissingval::text, a.attcollation), ','
                                                 ORDER BY a.attnum))
                             FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0)
                          -- the primary key's columns: the base names its violators by the key's text
                          || coalesce('/' || (SELECT i.indkey::text FROM pg_index i
                                               WHERE i.indrelid = c.oid AND i.indisprimary), '')
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                    WHERE n.nspname = 'public' AND c.relname = ANY(%s)""", (list(tables),))
    return {name: (int(oid), int(node), kind, (int(i), int(u), int(d)), str(shape))
            for name, oid, node, kind, i, u, d, shape in cur.fetchall()}


def _window(cur: psycopg.Cursor[Any], base_xmin: int) -> int:
    """Gives the age, in this transaction, of the base snapshot's xmin: every row version written since the
    base is at most that old (a transaction id at or above the base's xmin and below now).

    age() reads the raw 32-bit xmin and counts from the same stable point in every call of this transaction;
    a frozen row from more than 2^31 transactions ago may come out as young, which costs work, never a miss.
    """
    cur.execute("SELECT age(%s::text::xid)", (str(base_xmin & _MASK),))
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Change:
    changed: int  # row versions written since the base (inserted or the new side of an update)
    lost: int  # base rows updated or deleted since (exact when the base kept its young xmins, see TableState)
    rows: int
    young: tuple[int, ...] | None = None  # this snapshot's young xmins (TableState.young), for the next base
    # The changed rows themselves, for the tables whose rules re-read them (CARRIED): their tids in this
    # snapshot, and per row what CARRIED names (a key (user_id, UTC day, category), or a user's id).
    tids: tuple[str, ...] | None = None
    carried: tuple[tuple[Any, ...], ...] = ()

    @property
    def none(self) -> bool:
        return self.changed == 0 and self.lost == 0


def run(ctx: CheckContext, rules: Sequence[Rule], run_rules: RunRules, options: dict[str, Any], *,
        incremental: bool, keep: bool, max_base_age_s: int = MAX_BASE_AGE_S, extra: Sequence[Family] = (),
        since: bool = False, full_reason: str | None = None, helpers: Sequence[CheckContext] = (),
        sizes: dict[str, float] | None = None) -> tuple[list[Result], Outcome_, Kept | None]:
    """Gives the results (before the project settles them), how they were evaluated, and what to keep.

    `run_rules` evaluates rules in full (the engine, with the check's connections). `keep`: collect what a
    recorded run keeps for the next incremental check (every violating key of the row rules, the tables' row
    counts); that costs one more scan per table.
    """
    cur = ctx.cur
    families = engine.families_of(extra)
    concrete = engine.expanded(ctx, rules, families)
    fingerprint = catalogue_fingerprint()
    opts = option_key(options)
    snap, xmin, xmax, datoid, reset, today = _now(cur)
    out = Outcome_(mode="incremental" if incremental else "full")
    base: Base | None = None
    if incremental and full_reason:
        out.mode, out.reason = "full", full_reason
    elif incremental:
        loaded = load(cur, opts, _severity)
        reason = loaded if isinstance(loaded, str) else _whole_run_reason(loaded, fingerprint, xmin, xmax, datoid,
                                                                          reset, max_base_age_s, since)
        if reason is None:
            assert isinstance(loaded, Base)
            base = loaded
            out.base_run = base.run_id
        else:
            out.mode, out.reason = "full", reason
    data_tables = sorted({t for r in concrete if (ts := reads(r) or _spread(ctx, r, with_parents=True))
                          for t in ts if ctx.schema.has(t)})
    states = _states(cur, data_tables)
    changes: dict[str, Change | str] = {}
    if base is not None:
        changes = _changes(ctx, helpers, data_tables, base, states, _window(cur, base.kept.xmin), sizes or {},
                           xmin, xmax)
    log_reason = _log_proof(cur, base, _window(cur, base.kept.xmin), changes) if base is not None else None
    full: list[Rule] = []
    restricted: list[RowRule] = []
    grouped: list[Rule] = []
    logged: list[Rule] = []
    reused: list[Result] = []
    for rule in concrete:
        key = (rule.code, str(rule.table or "(schema)"))
        if base is None:
            full.append(rule)
            out.evaluated[key] = ("full", out.reason)
            continue
        if engine._precheck(ctx, rule) is not None:  # skipped or guaranteed: decided without reading a row
            full.append(rule)
            out.evaluated[key] = ("full", None)
            continue
        spread = _spread(ctx, rule)
        if spread is not None:  # one result per table of a kind: kept only when none of them changed
            verdict = _spread_verdict(rule, spread, base, changes)
            if verdict == "reuse":
                for table in spread:
                    prior = base.kept.results[(rule.code, table)][0]
                    reused.append(engine.result(rule, Outcome(rule.code, table, prior.count, prior.groups,
                                                              prior.sample, message=prior.message,
                                                              column=prior.column)))
                    out.evaluated[(rule.code, table)] = ("incremental", None)
            else:
                full.append(rule)
                out.evaluated[key] = ("full", verdict)
            continue
        verdict = _verdict(rule, key, base, changes, today, log_reason, ctx.options.day_boundary == "user-timezone")
        if verdict == "reuse":
            prior = base.kept.results[key][0]
            reused.append(engine.result(rule, Outcome(rule.code, key[1], prior.count, prior.groups, prior.sample,
                                                      message=prior.message, column=prior.column)))
            out.evaluated[key] = ("incremental", None)
        elif verdict == "groups":
            grouped.append(rule)
            out.evaluated[key] = ("incremental", None)
        elif verdict == "log":
            logged.append(rule)
            out.evaluated[key] = ("incremental", None)
        elif verdict == "restrict":
            assert isinstance(rule, RowRule)
            restricted.append(rule)
            out.evaluated[key] = ("incremental", None)
        else:
            full.append(rule)
            out.evaluated[key] = ("full", verdict)
    keys: dict[tuple[str, str], list[str]] = {}
    results = list(reused)
    if base is not None and (restricted or grouped or logged):
        _evaluate_changed(ctx, helpers, base, changes, restricted, grouped, logged, out, keys, results, full,
                          sizes or {}, log_reason is None)
    if full:
        if keep:  # the evaluations leave the violating groups' keys where their statement can give them
            for c in (ctx, *helpers):
                c.kept = {}
        try:
            results.extend(run_rules(full))
        finally:
            for c in (ctx, *helpers):
                for code, found in (c.kept or {}).items():  # a split pass leaves each part's keys on its own
                    keys.setdefault((code, str(BY_CODE[code].table)), []).extend(found)
                c.kept = None
    for res in results:  # a reused result keeps its base keys
        if (key := (res.code, res.table)) not in keys and out.evaluated.get(key, ("",))[0] == "incremental":
            kept_prior = base.kept.results.get(key) if base else None
            if kept_prior and kept_prior[1] is not None:
                keys[key] = kept_prior[1]
    results.sort(key=lambda r: (r.section, r.code, r.table))
    kept = _keep(ctx, concrete, results, keys, changes, states, fingerprint, opts, snap, xmin, xmax, datoid, reset,
                 today) if keep else None
    return results, out, kept


def _evaluate_changed(ctx: CheckContext, helpers: Sequence[CheckContext], base: Base, changes: dict[str, Change | str],
                      restricted: list[RowRule], grouped: list[Rule], logged: list[Rule], out: Outcome_,
                      keys: dict[tuple[str, str], list[str]], results: list[Result], full: list[Rule],
                      sizes: dict[str, float], log_proven: bool = False) -> None:
    """Evaluates the rules an incremental check re-reads in part, on the check's connections at once (the
    helpers share its snapshot), the costliest first; a part that fails runs its rules in full."""
    lock = threading.Lock()
    jobs: list[tuple[float, str, Sequence[Rule], Callable[[CheckContext, int], Any]]] = []
    by_table: dict[str, list[RowRule]] = {}
    for rule in restricted:
        by_table.setdefault(str(rule.table), []).append(rule)

    def done_rows(table: str, members: list[RowRule]) -> Callable[[Any], None]:
        def finish(found: dict[str, list[str]]) -> None:
            for rule in members:
                violators = found[rule.code]
                keys[(rule.code, table)] = violators
                results.append(engine.result(rule, Outcome(rule.code, table, len(violators),
                                                           sample=tuple(violators[: ctx.options.sample]))))
        return finish

    for table, members in by_table.items():
        change = changes[table]
        assert isinstance(change, Change)
        jobs.append((sizes.get(table, 0.0), f"incremental:{table}", members,
                     lambda w, win, t=table, m=members, c=change: (  # type: ignore[misc]
                         done_rows(t, m), _restricted(w, t, m, base, win, c, log_proven,
                                                      _joined_unchanged(m, changes)))))

    def done_group(rule: Rule) -> Callable[[Any], None]:
        def finish(found: tuple[Outcome, list[str]]) -> None:
            keys[(rule.code, str(rule.table))] = found[1]
            results.append(engine.result(rule, found[0]))
        return finish

    for one in grouped:
        if one.code in incremental_keys.KEYED:
            continue
        jobs.append((sizes.get(GROUPED[one.code], 0.0) / 2, f"incremental:{one.code}", [one],
                     lambda w, win, r=one: (done_group(r), _groups(w, r, base, win))))  # type: ignore[misc]

    # BUD001, BUD002, DUP002 and DUP003: the keys a change touched, found first (a job that adds the reads of
    # those keys to the queue, in halves of users, one per connection), then each half read whole.
    keyed = [r for r in (*grouped, *logged) if r.code in incremental_keys.KEYED]
    logged = [r for r in logged if r.code not in incremental_keys.KEYED]
    producing = [0]
    cond = threading.Condition(lock)

    def done_keyed(runs: list[incremental_keys.Found | None]) -> None:
        codes = frozenset(r.code for r in keyed)
        if any(run is None for run in runs):  # a half failed: the worker sent its rules to the full run
            return
        found = incremental_keys.merged([run for run in runs if run is not None], codes, ctx.options.sample)
        for rule in keyed:
            keys[(rule.code, str(rule.table))] = found.kept[rule.code]
            results.append(engine.result(rule, found.outcomes[rule.code]))

    def find_keys(w: CheckContext, win: int) -> tuple[Callable[[Any], None], Any]:
        from ..runs.change_log import LOG

        codes = frozenset(r.code for r in keyed)
        started = time.perf_counter()
        written = {t: (c.carried if isinstance(c := changes.get(t), Change) and c.tids is not None else None)
                   for t in ("transactions", "daily_plan")}
        found = incremental_keys.affected(w, codes, base, win, LOG, written)
        runs = incremental_keys.halves(found, 1 + len(helpers))
        _timing(w, f"incremental:keys ({len(found):,} keys)", tuple(sorted(codes)), ("transactions", "daily_plan"),
                started)
        slots: list[incremental_keys.Found | None] = [None] * len(runs)
        left = [len(runs)]

        def finish_run(i: int) -> Callable[[Any], None]:
            def finish(one: incremental_keys.Found) -> None:
                slots[i] = one
                left[0] -= 1
                if left[0] == 0:
                    done_keyed(slots)
            return finish

        def read(i: int, chosen: list[incremental_keys.Key]) -> Callable[[CheckContext, int], Any]:
            return lambda w2, _: (finish_run(i), incremental_keys.evaluate(w2, codes, chosen))

        def queued(_: Any) -> None:
            if not runs:  # nothing touched: every verdict is the base's, and none of its violators is left
                done_keyed([])
            queue[:0] = [(0.0, f"incremental:keys[{i + 1}/{len(runs)}]", keyed, read(i, chosen))
                         for i, chosen in enumerate(runs)]
        return queued, None

    if keyed:
        producing[0] = 1
        jobs.append((float("inf"), "incremental:keys", keyed, find_keys))

    def done_logged(members: list[Rule]) -> Callable[[Any], None]:
        def finish(found: dict[str, tuple[Outcome, list[str]]]) -> None:
            for rule in members:
                outcome, violators = found[rule.code]
                keys[(rule.code, str(rule.table))] = violators
                results.append(engine.result(rule, outcome))
        return finish

    for part in ([r for r in logged if r.code != "USR003"], [r for r in logged if r.code == "USR003"]):
        if part:
            cost = sum(sizes.get(t, 0.0) for t in ("transactions", "daily_plan")) if part[0].code != "USR003" else 0.0
            jobs.append((cost, f"incremental:change_log:{'+'.join(r.code for r in part)}", part,
                         lambda w, win, p=part: (done_logged(p), _old_key_rules(w, p, base, win, changes))))  # type: ignore[misc]
    queue = sorted(jobs, key=lambda j: -j[0])
    failed: set[tuple[str, str]] = set()

    def worker(wctx: CheckContext) -> None:
        own = _window(wctx.cur, base.kept.xmin)
        while True:
            with cond:
                while not queue and producing[0]:  # the keys' job is about to add their reads
                    cond.wait()
                if not queue:
                    return
                _, name, members, job = queue.pop(0)
            started = time.perf_counter()
            try:
                with wctx.cur.connection.transaction(), engine.rules_search_path(wctx.cur, members):
                    finish, found = job(wctx, own)
                if job is not find_keys:
                    _timing(wctx, name, tuple(r.code for r in members), tuple({str(r.table) for r in members}),
                            started)
                with cond:
                    if not any((r.code, str(r.table)) in failed for r in members):
                        finish(found)
            except psycopg.Error as exc:
                if engine.recovery_conflict(exc) or wctx.cur.connection.closed:
                    raise
                with cond:
                    for rule in members:  # once, whichever part of a rule's reads failed
                        if (rule.code, str(rule.table)) not in failed:
                            failed.add((rule.code, str(rule.table)))
                            full.append(rule)
                            out.evaluated[(rule.code, str(rule.table))] = (
                                "full", f"incremental query failed: {exc}".splitlines()[0])
            finally:
                if job is find_keys:
                    with cond:
                        producing[0] = 0
                        cond.notify_all()

    if not helpers:
        worker(ctx)
        return
    with ThreadPoolExecutor(max_workers=1 + len(helpers)) as pool:
        for future in [pool.submit(worker, c) for c in (ctx, *helpers)]:
            future.result()


def _timing(ctx: CheckContext, name: str, codes: tuple[str, ...], tables: tuple[str, ...], started: float) -> None:
    ctx.passes.append(PassTiming(name, codes, tables, int((time.perf_counter() - started) * 1000), ctx.connection))


SPREAD_PARENTS = {"REF011": ("users",)}  # what a per-table rule of the catalogue reads besides each table


def _spread(ctx: CheckContext, rule: Rule, with_parents: bool = False) -> tuple[str, ...] | None:
    """Gives the tables a per-table rule of the catalogue reads one by one (REF011: every text user_id table of
    the live schema), with what it reads besides them when asked; None for any other rule."""
    if rule.code not in SPREAD_PARENTS or rule.table is not None or BY_CODE.get(rule.code) is not rule:
        return None
    from .rules.references import user_id_tables

    tables = tuple(user_id_tables(ctx.schema, uuid=False))
    return (*tables, *SPREAD_PARENTS[rule.code]) if with_parents else tables


def _spread_verdict(rule: Rule, tables: tuple[str, ...], base: Base, changes: dict[str, Change | str]) -> str:
    """Gives 'reuse' when the base evaluated the same tables and none of them, nor what they join, changed."""
    before = {t for (code, t) in base.kept.results if code == rule.code}
    if before != set(tables):
        return "the tables it reads are not the base run's"
    if any(base.kept.results[(rule.code, t)][0].status not in (Status.PASS, Status.FAIL) for t in tables):
        return "no evaluated result in the base run"
    for table in (*tables, *SPREAD_PARENTS[rule.code]):
        state = changes.get(table, f"{table} was not read")
        if isinstance(state, str):
            return state
        if not state.none:
            return f"a rule over every table of a kind: {_said(table, state)}"
    return "reuse"


def _changes(ctx: CheckContext, helpers: Sequence[CheckContext], tables: Sequence[str], base: Base,
             states: dict[str, State], window: int, sizes: dict[str, float], xmin: int,
             xmax: int) -> dict[str, Change | str]:
    """Gives what changed in each table, read on the check's connections at once (all in the same snapshot:
    the helpers imported it), the biggest tables first."""
    queue = sorted(tables, key=lambda t: -sizes.get(t, 0.0))
    lock = threading.Lock()
    out: dict[str, Change | str] = {}

    def worker(wctx: CheckContext) -> None:
        # age() counts from a point each transaction fixes at its first call: a helper's point is later than
        # the check's when other sessions took transaction ids meanwhile, so each connection measures its own.
        own = window if wctx is ctx else _window(wctx.cur, base.kept.xmin)
        young = _young_window(wctx.cur, xmin, xmax)  # what the next base keeps of this snapshot
        while True:
            with lock:
                if not queue:
                    return
                table = queue.pop(0)
            started = time.perf_counter()
            out[table] = _change(wctx.cur, table, base.kept.tables.get(table), states.get(table), own, young,
                                 carried(ctx, table))
            _timing(wctx, f"changes:{table}", (), (table,), started)

    if not helpers:
        worker(ctx)
        return out
    with ThreadPoolExecutor(max_workers=1 + len(helpers)) as pool:
        for future in [pool.submit(worker, c) for c in (ctx, *helpers)]:
            future.result()
    return out


def _whole_run_reason(base: Base, fingerprint: str, xmin: int, xmax: int, datoid: int, reset: datetime | None,
                      max_age_s: int, since: bool) -> str | None:
    kept = base.kept
    if since:
        return "--since: its window moves with the clock"
    if kept.catalogue != fingerprint:
        return f"the base run {base.run_id} used another rule catalogue (tool version or rules changed)"
    if kept.datoid != datoid or xmax < kept.xmax:
        return f"the base run {base.run_id} read another database (transaction ids went back: a restore?)"
    if xmax - kept.xmin > XID_MARGIN:
        return f"wraparound: the base run {base.run_id} is {xmax - kept.xmin} transaction ids old"
    if kept.stats_reset != reset:
        return "statistics reset since the base run"
    age = (datetime.now(base.started_at.tzinfo) - base.started_at).total_seconds()
    if age > max_age_s:
        return f"the base run {base.run_id} is older than --max-base-age ({int(age // 3600)} h)"
    return None


def carried(ctx: CheckContext, table: str) -> tuple[str, ...]:
    """Gives what the changes scan collects of each changed row of `table` besides its tid (SQL on t), for the
    re-reads that follow: the (user_id, UTC day, category) key of a transaction or plan row (incremental_keys),
    a user's id (USR003); () for a table whose changed rows no re-read names."""
    need = {"transactions": ("user_id", "spent_at", "category"), "daily_plan": ("user_id", "date", "category"),
            "users": ("id",)}.get(table)
    if need is None or not all(ctx.schema.has(f"{table}.{c}") for c in need):
        return ()
    if table == "users":
        return ("t.id::text",)
    day = "(t.spent_at AT TIME ZONE 'UTC')::date" if table == "transactions" else plan_day_sql("t.date")
    # the day as ISO text whatever the session's DateStyle, its era spelt out (a BC day is no key Python holds)
    day = f"CASE WHEN isfinite({day}) THEN to_char({day}, 'YYYY-MM-DD AD') ELSE ({day})::text END"
    return ("t.user_id::text", day, "t.category::text")


def _change(cur: psycopg.Cursor[Any], table: str, before: TableState | None,
            now: State | None, window: int, young_window: int | None, carry: tuple[str, ...] = ()) -> Change | str:
    """Gives what changed in a table since the base, or why that cannot be told (then its rules run in full).

    A row version whose xmin is one of the base's young xmins (TableState.young) is one the base saw: not a
    change, so `lost` is exact even when the base snapshot had a transaction in flight. The scan also gives
    this snapshot's own young xmins (young_window: the age of this snapshot's xmin), for the next base.
    """
    if now is not None and now[2] == "s":
        return f"{table}: row-level security decides which rows are read (a policy changes without a row)"
    if before is None or now is None:
        return f"{table} was not read by the base run"
    oid, node, kind, counters, shape = now
    if kind != "r":
        return f"{table} is partitioned or has children (changes are not tracked there)"
    if oid != before.oid or node != before.relfilenode:
        return f"{table} was truncated or rewritten since the base (new relfilenode)"
    if shape != before.shape and shape.split("/")[0] == before.shape.split("/")[0]:
        return f"the primary key of {table} changed since the base (its violators are kept by their key)"
    if shape != before.shape:
        return f"the columns of {table} changed since the base (an added column's value is in no row version)"
    if any(a < b for a, b in zip(counters, before.counters, strict=True)):
        return f"{table}: statistics reset since the base"
    try:
        with cur.connection.transaction():
            seen = "" if not before.young else " AND NOT t.xmin::text = ANY(%(young)s::text[])"
            if carry:  # the changed rows themselves, as one JSON array (the test on xmin made once a row, as without;
                # JSON is parsed faster than an array of records: 0.6 s against 1.0 s for 45,000 rows)
                changes = (f"0, count(*), {_young_sql(young_window)}, json_agg(json_build_array(t.xmin, t.ctid, "
                           f"{', '.join(carry)})) FILTER (WHERE {changed_sql(window)})")
            else:
                changes = f"count(*) FILTER (WHERE {changed_sql(window)}{seen}), count(*), {_young_sql(young_window)}"
            cur.execute(f"SELECT {changes} FROM {rel(table)} t", {"young": [str(x) for x in before.young or ()]})
            row = cur.fetchone()
    except psycopg.Error as exc:
        if engine.recovery_conflict(exc) or cur.connection.closed:
            raise
        return f"{table}: its changes could not be read ({str(exc).strip().splitlines()[0] if str(exc) else exc})"
    assert row is not None
    changed, rows = int(row[0]), int(row[1])
    if not carry:
        return Change(changed, before.rows - (rows - changed), rows, _young(row[2]))
    found = row[3] or ()  # (xmin, tid, *carry) as JSON strings; a key's day as carried() spells it
    seen_xmins = {str(x) for x in before.young or ()}
    changed = sum(1 for r in found if r[0] not in seen_xmins)  # a young xmin the base kept is the base's row
    dated = len(carry) == 3
    try:
        keys = tuple((r[2], _iso_day(r[3]), r[4]) if dated else tuple(r[2:]) for r in found)
    except ValueError as exc:  # a day no probe can read as a range (infinity, BC): the table's rules in full
        return f"{table}: a changed row's day cannot be read ({exc})"
    return Change(changed, before.rows - (rows - changed), rows, _young(row[2]), tuple(str(r[1]) for r in found),
                  keys)


def _iso_day(text: str | None) -> date | None:
    """Gives the day of carried()'s text ('2026-01-31 AD'), None for NULL; ValueError for any day Python cannot
    hold (infinity, BC, beyond 9999)."""
    if text is None:
        return None
    if not text.endswith(" AD"):
        raise ValueError(f"day {text!r}")
    return date.fromisoformat(text[:-3])


YOUNG_LIMIT = 10_000  # more distinct young xmins than this are not kept (a long transaction held xmin back)


def _young_window(cur: psycopg.Cursor[Any], xmin: int, xmax: int) -> int | None:
    """Gives the age of this snapshot's xmin, or None when the snapshot had no transaction in flight (xmin = xmax:
    no row it saw can be as young as its xmin, so there is nothing to keep and no aggregate to pay for)."""
    return _window(cur, xmin) if xmax > xmin else None


def _young_sql(window: int | None) -> str:
    """Gives SQL aggregating the distinct xmins of the rows not older than a snapshot's xmin (`window`: its age;
    None: none can be). A DISTINCT aggregate keeps the scan serial, so it is asked for only when needed."""
    if window is None:
        return "ARRAY[]::text[]"
    return f"(array_agg(DISTINCT t.xmin::text) FILTER (WHERE {changed_sql(window)}))[1:{YOUNG_LIMIT + 1}]"


def _young(found: list[str] | None) -> tuple[int, ...] | None:
    found = found or []
    return None if len(found) > YOUNG_LIMIT else tuple(sorted(int(x) for x in found))


def _verdict(rule: Rule, key: tuple[str, str], base: Base, changes: dict[str, Change | str], today: date,
             log: str | None = None, by_zone: bool = False) -> str:
    """Gives 'reuse', 'restrict', 'groups', 'log', or the reason the rule runs in full. `log`: why the change
    log cannot serve this base (None: it can)."""
    tables = reads(rule)
    if tables is None:
        if isinstance(rule, SchemaRule):
            return "a schema rule: always in full"
        if rule.code in BY_CODE:
            return "a rule over every table of a kind: always in full"
        return "a team rule: the tables it reads are not known"
    prior = base.kept.results.get(key)
    if prior is None or prior[0].status not in (Status.PASS, Status.FAIL):
        return "no evaluated result in the base run"
    states = [changes.get(t, f"{t} was not read") for t in tables]
    unknown = next((s for s in states if isinstance(s, str)), None)
    if unknown is not None:
        return unknown
    clock = isinstance(rule, RowRule) and bool(_CLOCK.search(rule.predicate))
    if clock and rule.code in SHRINKING_WITH_TIME and rule.predicate == BY_CODE[rule.code].predicate:  # type: ignore[attr-defined]
        clock, shrinking = False, True
    else:
        shrinking = False
    date_bound = rule.code in DATE_BOUND
    if all(isinstance(s, Change) and s.none for s in states) and not clock and not shrinking:
        if date_bound and base.kept.utc_date != today:
            return "its window starts at today's date, and the base ran on another day"
        return "reuse"
    touched = ", ".join(_said(t, s) for t, s in zip(tables, states, strict=True) if isinstance(s, Change)
                        and not s.none)
    if rule.code in GROUPED and BY_CODE.get(rule.code) is rule:
        if prior[1] is None:
            return "the base run kept no members of its groups"
        return "groups"
    if rule.code in OLD_KEYS and BY_CODE.get(rule.code) is rule:
        if log is not None:
            return f"a grouping rule: {touched}; the change log cannot say which groups they left ({log})"
        if prior[1] is None:
            return "the base run kept no keys for it"
        if date_bound and base.kept.utc_date != today:
            return "its window starts at today's date, and the base ran on another day"
        users = changes.get("users")
        if by_zone and rule.code != "USR003" and not (isinstance(users, Change) and users.none):
            return "--day-boundary user-timezone: users changed, and a zone moves transactions between days"
        return "log"
    if not isinstance(rule, RowRule):
        return f"a grouping rule: {touched}"
    if clock:
        return "its predicate reads the clock"
    if prior[1] is None:
        return "the base run kept no keys for it"
    own = states[0]
    assert isinstance(own, Change)
    if len(prior[1]) > max(1000, own.rows // 20):  # looking each one up by its key would cost more than a scan
        return f"{len(prior[1]):,} violating rows at the base: a full read is cheaper than looking them up"
    if str(rule.table) in [n for _, n in _named(rule)]:
        return f"it reads other rows of {rule.table}"
    for table, state in zip(tables[1:], states[1:], strict=True):
        assert isinstance(state, Change)
        if state.none:
            continue
        if rule.fk is not None and table == rule.fk[1] and state.lost == 0:
            continue  # a parent table that only gained rows cannot orphan an unchanged child
        return f"{_said(table, state)} (a joined table)"
    return "restrict"


def _said(table: str, change: Change) -> str:
    return f"{table}: {change.changed} rows written, {change.lost} base rows updated or deleted since the base"


def _joined_unchanged(rules: Sequence[RowRule], changes: dict[str, Change | str]) -> bool:
    """Tells whether no table the rules join (besides their own) changed at all since the base."""
    return all(isinstance(c := changes.get(t), Change) and c.none for r in rules for t in (reads(r) or ())[1:])


def _restricted(ctx: CheckContext, table: str, rules: list[RowRule], base: Base, window: int,
                change: Change, log_proven: bool = False, joined_unchanged: bool = False) -> dict[str, list[str]]:
    """Gives each row rule's violating keys, reading only the changed rows and what is needed of the base's.

    A row rule is restricted only when the tables it joins are unchanged, or, for an orphan rule, the parent
    only gained rows (see _verdict): an unchanged row can then only lose a violation (a parent that came
    back), never gain one.
    - the changed rows (written since the base) are evaluated: by the tids the changes scan found, or one scan;
    - the base's violators are evaluated again, looked up by their primary key (typed, so the key's index or a
      hash join serves them), unless no joined table changed at all (`joined_unchanged`): an unchanged row then
      keeps the base's verdict (unless its rule reads the clock), and the question is only whether it is still
      there, unchanged. All are when the
      table lost no row since the base (`lost`, exact); all but the keys the change log logged when it proves
      itself complete (see _log_proof) and logs this table (a row updated or deleted since: its new version, if
      any, is among the changed rows).
    Only rows violating some rule come back (one row per changed row was the costliest part at scale 1).
    """
    from ..runs.change_log import LOG, LOGGED

    prior = {r.code: list(base.kept.results[(r.code, table)][1] or ()) for r in rules}
    key = ctx.schema.row_key(table)
    joins = " ".join(engine.pass_joins(rules))
    conditions = [f"coalesce({engine._condition(ctx, r)}, false)" for r in rules]
    pk = ctx.schema.keys.get(table) or ()
    gone: set[str] | None = None
    if not joined_unchanged:
        pass
    elif change.lost == 0:
        gone = set()
    elif log_proven and table in LOGGED and pk == ("id",):  # the log names rows by id (change_log.function_body)
        ctx.cur.execute(f"SELECT DISTINCT pk::text FROM {LOG} WHERE tbl = %s AND txid >= %s::text::xid8",
                        (LOGGED[table][0], str(base.kept.xmin)))
        gone = {r[0] for r in ctx.cur.fetchall()}
    # A rule whose predicate reads the clock (SHRINKING_WITH_TIME) can change its verdict on an unchanged row.
    kept_as_is = {r.code for r in rules if gone is not None and not _CLOCK.search(r.predicate)}
    # The base violators the log names are read again, not dropped: an entry may be older than the base (a
    # writer that committed before it, while an older one was in flight), its row still there, unchanged.
    union = sorted(set().union(*(set(prior[r.code]) & (gone or set()) if r.code in kept_as_is else set(prior[r.code])
                                 for r in rules)))
    if len(pk) == 1:
        typ = ctx.schema.columns[table][pk[0]][0]
        known = f"t.{ident(pk[0])} IN (SELECT CAST(k AS {typ}) FROM unnest(%(keys)s::text[]) AS u(k))"
    else:
        known = f"{key} IN (SELECT unnest(%(keys)s::text[]))"
    hit = " OR ".join(conditions)
    # (statement, planner settings): each branch its own statement, so each gets the plan it needs
    branches: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    if change.changed and change.tids is not None:  # the changed rows, by the tids the changes scan found
        branches.append((f"SELECT {key}, true, {', '.join(conditions)} FROM {rel(table)} t {joins} "
                         f"WHERE t.ctid = ANY(%(tids)s::tid[]) AND ({hit})", _by_tid(change)))
    elif change.changed:
        branches.append((f"SELECT {key}, true, {', '.join(conditions)} FROM {rel(table)} t {joins} "
                         f"WHERE {changed_sql(window)} AND ({hit})", ()))
    if union:  # not the rows of the branch above, when there is one (a young row the base saw is inside the
        # window but no row written since: with no branch above it is read here)
        apart = f" AND NOT {changed_sql(window)}" if branches else ""
        branches.append((f"SELECT {key}, false, {', '.join(conditions)} FROM {rel(table)} t {joins} "
                         f"WHERE {known}{apart} AND ({hit})", ()))
    found: dict[str, list[str]] = {r.code: [] for r in rules}
    rows: list[tuple[Any, ...]] = []
    with engine.rules_search_path(ctx.cur, rules):
        for statement, settings in branches:
            with planner_settings(ctx.cur, settings):
                ctx.cur.execute(statement, {"keys": union, "tids": list(change.tids or ())})
                rows += ctx.cur.fetchall()
    wanted = {code: set(keys) for code, keys in prior.items()}
    for row in rows:
        k, changed = row[0], row[1]
        for rule, violates in zip(rules, row[2:], strict=True):
            if violates and (changed or k in wanted[rule.code]):
                found[rule.code].append(k)
    if gone is not None:  # the base's violators still there, unchanged: their verdict is the base's
        for rule in (r for r in rules if r.code in kept_as_is):
            seen = set(found[rule.code])
            found[rule.code] += [k for k in prior[rule.code] if k not in gone and k not in seen]
    return found


# The changed rows are read by their tids when they are at most this share of the table's rows. The planner,
# which costs each tid as a random page read, would rather scan the whole table (or its user_id index) and test
# every row's ctid against the list: 1.0 s against 0.27 s for 44,549 tids of 5 million transactions.
TID_SHARE = 0.1
_TID_SCAN = (("enable_seqscan", "off"), ("enable_indexscan", "off"), ("enable_bitmapscan", "off"))


def _by_tid(change: Change) -> tuple[tuple[str, str], ...]:
    """Gives the planner settings that make a read of the changed rows by their tids a Tid Scan (the joined
    tables are then read whole and hashed, which costs what they hold), when the tids are few enough."""
    return _TID_SCAN if len(change.tids or ()) <= TID_SHARE * max(change.rows, 1) else ()


GROUPED: dict[str, str] = {"DUP001": "users", "DUP002": "daily_plan", "DUP003": "transactions"}
# Per duplicate rule, the columns of the key its groups are restricted by (DUP003's is its candidate pair
# (user_id, second), which a group's key refines: a group lies in one pair).
GROUP_KEYS = {
    "DUP001": (dup001_key_sql("t"),),
    "DUP002": ("t.user_id", plan_day_sql("t.date"), "t.category"),
    "DUP003": ("t.user_id", "date_trunc('second', t.spent_at)"),
}


def _array(ctx: CheckContext, values: Sequence[Any], typ: str) -> str:
    """Gives a typed array literal of values (the rules' statements take their own parameters; '%' doubled)."""
    text = [None if v is None else str(v) for v in values]
    return psycopg.sql.Literal(text).as_string(ctx.cur.connection).replace("%", "%%") + f"::{typ}[]"


def _within(ctx: CheckContext, code: str, keys: list[tuple[Any, ...]], null_user: bool) -> str:
    """Gives SQL true for the rows of the given groups, each whole: the user's rows by the (user_id, time)
    index and a range of the day or second (a NULL user_id, which no index equality finds, apart)."""
    if code == "DUP001":
        return f"{dup001_key_sql('t')} IN (SELECT unnest({_array(ctx, [k[0] for k in keys], 'text')}))"
    table = GROUPED[code]
    typ = ctx.schema.columns[table]["user_id"][0]
    if code == "DUP002":
        days, cats = _array(ctx, [k[1] for k in keys], "date"), _array(ctx, [k[2] for k in keys], "text")
        match = ("t.date >= (a.d::timestamp AT TIME ZONE 'UTC') AND t.date < ((a.d + 1)::timestamp AT TIME ZONE "
                 "'UTC') AND t.category IS NOT DISTINCT FROM a.c")
        if null_user:
            return f"t.user_id IS NULL AND EXISTS (SELECT 1 FROM unnest({days}, {cats}) a(d, c) WHERE {match})"
        users = _array(ctx, [k[0] for k in keys], typ)
        return f"EXISTS (SELECT 1 FROM unnest({users}, {days}, {cats}) a(u, d, c) WHERE t.user_id = a.u AND {match})"
    seconds = _array(ctx, [k[1] for k in keys], "timestamptz")
    row = rel("transactions")
    match = f"{row}.spent_at >= a.s AND {row}.spent_at < a.s + interval '1 second'"
    if null_user:
        return f"{row}.user_id IS NULL AND EXISTS (SELECT 1 FROM unnest({seconds}) a(s) WHERE {match})"
    users = _array(ctx, [k[0] for k in keys], typ)
    return f"EXISTS (SELECT 1 FROM unnest({users}, {seconds}) a(u, s) WHERE {row}.user_id = a.u AND {match})"


def _groups(ctx: CheckContext, rule: Rule, base: Base, window: int) -> tuple[Outcome, list[str]]:
    """Gives a duplicate rule's outcome and the members of its violating groups, re-evaluating whole only the
    groups of (the base's violating groups) UNION (the keys of the rows written since the base).

    Exact, because a group in neither set now has only rows the base saw unchanged (no row written since
    carries its key), and those rows were in it at the base too: if they are two or more now, they were at
    the base, so the group was a base violator and its members (kept by primary key) give its key. A group
    can only have lost rows since (updated away, deleted, soft-deleted), and losing rows never makes a
    duplicate. Rule by rule against the statements:
    - DUP001 groups users with email ~ NOT_BLANK by lower(trimmed(email)): a row's blankness is part of the
      row, so an unchanged row is in or out as at the base; a NULL e-mail gives a NULL key, in no group.
    - DUP002 groups every daily_plan row (no deleted_at filter) by (user_id, UTC day, category), NULLs equal:
      a NULL user_id is restricted in a pass of its own, a NULL category matched IS NOT DISTINCT.
    - DUP003 finds candidate (user_id, second) pairs among all dated rows (soft-deleted too) then groups the
      live rows of those pairs by (user_id, category, amount, second): a group lies in one pair, and the
      restriction keeps pairs whole, so a pair's rows stay adjacent in spent_at order and the candidate
      test (two rows of the pair side by side) is the full statement's. deleted_at is part of the row.
    The keeper (earliest created_at, then id) and each group's ids are the full statement's, groups being
    whole; which groups fill the --sample is the server's order in both cases (the full statement names no
    order either), so the sample is equal whenever the failing groups fit in it.
    """
    table = GROUPED[rule.code]
    prior = base.kept.results[(rule.code, table)][1] or []
    typ = ctx.schema.columns[table]["id"][0]  # the members are ids (duplicates._ids), whatever the primary key is
    columns = ", ".join(GROUP_KEYS[rule.code])
    ctx.cur.execute(f"SELECT DISTINCT {columns} FROM {rel(table)} t WHERE {changed_sql(window)} "
                    f"UNION SELECT {columns} FROM {rel(table)} t "
                    f"WHERE t.id IN (SELECT CAST(k AS {typ}) FROM unnest(%s::text[]) AS u(k))", (prior,))
    affected = ctx.cur.fetchall()
    if rule.code == "DUP001":
        passes = [(r, False) for r in [[k for k in affected if k[0] is not None]] if r]
    else:
        passes = [(r, null) for null in (False, True) if (r := [k for k in affected if (k[0] is None) == null])]
    count = groups = 0
    sample: list[str] = []
    members: list[str] = []
    n = ctx.options.sample
    for keys, null_user in passes:
        within = _within(ctx, rule.code, keys, null_user)
        if rule.code == "DUP001":
            ctx.cur.execute(f"SELECT n, ids FROM ({dup001_grouped_sql(ctx, within)}) d")
            found = [(int(m), list(ids)) for m, ids in ctx.cur.fetchall()]
            cut = [x for _, ids in found for x in ids[1:]]  # as DUP001's statement: every group's ids after the keeper
        elif rule.code == "DUP002":
            ctx.cur.execute(dup002_members_sql(ctx, within))
            found = [(int(m), list(ids)) for m, ids in ctx.cur.fetchall()]
            cut = [x for _, ids in found[:n] for x in ids[1:]]  # as dup002_sql: the first keys' surplus ids
        else:
            ctx.cur.execute(dup003_sql(ctx, within, members=True))
            rows = ctx.cur.fetchall()
            found = [(int(m), list(ids)) for m, _, ids in rows]
            cut = [last for _, last, _ in rows]  # as dup003_sql: each group's greatest id
        count += sum(m - 1 for m, _ in found)
        groups += len(found)
        sample += cut
        members += [x for _, ids in found for x in ids]
    return Outcome(rule.code, table, count, groups, tuple(sample[:n])), members


OLD_KEYS = frozenset({"BUD001", "BUD002", "USR003"})  # the rules that need the change log (runs/change_log.py)


def _log_proof(cur: psycopg.Cursor[Any], base: Base, window: int, changes: dict[str, Change | str]) -> str | None:
    """Gives why the change log cannot be trusted to hold every old key since the base, or None when it can.

    It can when its triggers (both events, both tables) exist, are enabled ALWAYS, call the log's functions,
    and their pg_trigger rows and the functions' pg_proc rows are older than the base (a DROP, a DISABLE then
    ENABLE or a CREATE OR REPLACE writes a new catalog row, whose xmin is then younger: a gap is possible);
    when no pruning went past the base's xmin; and when, per table, the distinct primary keys logged since
    the base are at least the base rows updated or deleted since (`lost`, counted from the rows themselves):
    a row the log missed is a row counted lost and not logged.
    """
    from ..runs import change_log

    cur.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                (change_log.LOG, change_log.PRUNED))
    row = cur.fetchone()
    if not row or not row[0]:
        return "it is not installed (mita-integrity changelog install)"
    cur.execute("""SELECT c.relname, t.tgname, t.tgenabled::text, age(t.xmin) > %(w)s AND age(p.xmin) > %(w)s,
                          t.tgfoid = to_regprocedure('integrity.change_log_' || c.relname || '()')
                          AND p.prosrc = (%(bodies)s::jsonb ->> c.relname::text) AND p.prosecdef AND """
                + change_log.SHAPE_SQL + """
                     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = t.tgfoid
                    WHERE n.nspname = 'public' AND c.relname = ANY(%(tables)s) AND t.tgname = ANY(%(names)s)""",
                {"w": window, "tables": list(change_log.LOGGED),  # a body replaced before the base is no proof
                 "bodies": json.dumps({t: change_log.function_body(t) for t in change_log.LOGGED}),
                 "names": [change_log.trigger_name(e) for e in change_log.EVENTS]})
    found = {(table, name): (state, old, own) for table, name, state, old, own in cur.fetchall()}
    for table in change_log.LOGGED:
        for event in change_log.EVENTS:
            name = change_log.trigger_name(event)
            if (table, name) not in found:
                return f"its trigger {name} on {table} is missing (mita-integrity changelog install)"
            state, old, own = found[(table, name)]
            if state != "A" or not own:
                return f"its trigger {name} on {table} is not enabled ALWAYS on the log's function"
            if not old:
                return f"its trigger {name} on {table} (or its function) changed since the base"
    # A TRUNCATE (or a rename, a rewrite) of the log writes its pg_class row anew: entries may be gone, and the
    # count below cannot see it when rows inserted since were updated too (their keys fill the count).
    # A trigger or rule of the log's own (one dropping some entries, made before the base) is no proof either.
    cur.execute("SELECT age(c.xmin) > %s AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid) "
                "AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid) "
                "FROM pg_class c WHERE c.oid = to_regclass(%s)", (window, change_log.LOG))
    kept = cur.fetchone()
    if not kept or not kept[0]:
        return "the log itself was truncated or altered since the base, or has a trigger or rule of its own"
    # A logical replication subscription's apply worker fires row triggers only, never statement triggers
    # (PostgreSQL's docs, "Logical Replication: Architecture"): what it applies is not logged, and the count
    # below cannot see a missing entry when rows inserted since were updated too. Any subscription of this
    # database is no proof (one dropped since the base is not seen: the note in docs/incremental.md).
    cur.execute("SELECT count(*) FROM pg_catalog.pg_subscription s WHERE s.subdbid = "
                "(SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())")
    subscribed = cur.fetchone()
    if subscribed and int(subscribed[0]):
        return ("this database has a logical replication subscription, whose writes fire no statement trigger "
                "(they are not logged)")
    cur.execute(f"SELECT below::text::bigint FROM {change_log.PRUNED}")
    pruned = cur.fetchone()
    if pruned and int(pruned[0]) > base.kept.xmin:
        return "it was pruned past the base (a base older than the pruning horizon)"
    cur.execute(f"SELECT tbl::text, count(DISTINCT pk) FROM {change_log.LOG} WHERE txid >= %s::text::xid8 GROUP BY 1",
                (str(base.kept.xmin),))
    logged = {tbl: int(n) for tbl, n in cur.fetchall()}
    for table, (letter, _) in change_log.LOGGED.items():
        change = changes.get(table)
        if not isinstance(change, Change):
            continue  # the rules reading it run in full anyway, with that table's reason
        if logged.get(letter, 0) < change.lost:
            return (f"{change.lost} base rows of {table} were updated or deleted since the base, but it holds "
                    f"{logged.get(letter, 0)} (a write bypassed it)")
    return None


def _log_installed(cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether the change log's triggers are all there and enabled ALWAYS (a base then keeps the keys of
    the rules that need it; without the log they would be of no use)."""
    from ..runs import change_log

    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (change_log.LOG,))
    row = cur.fetchone()
    return bool(row and row[0]) and change_log.status(cur).installed


def _old_key_rules(ctx: CheckContext, rules: Sequence[Rule], base: Base, window: int,
                   changes: dict[str, Change | str] | None = None) -> dict[str, tuple[Outcome, list[str]]]:
    """Gives USR003's outcome and violators, re-reading only the affected users: the users written since, the
    old user of every logged transaction (a user that lost one), and the base's violators
    (BUD001 and BUD002, which need the log too, are incremental_keys'). The sample, like the full one's, is any
    --sample of its violators.
    """
    from ..runs.change_log import LOG
    from .rules.users import usr003_where

    cur = ctx.cur
    since = str(base.kept.xmin)
    codes = {r.code for r in rules}
    out: dict[str, tuple[Outcome, list[str]]] = {}
    n = ctx.options.sample
    if "USR003" in codes:
        typ = ctx.schema.columns["users"]["id"][0]
        # A user gaining a live transaction can only stop violating, and the base's violators are read anyway:
        # the users of the transactions written since are not needed, only those a transaction left (the log).
        parts = [f"SELECT user_id::text FROM {LOG} WHERE tbl = 't' AND txid >= %(x)s::text::xid8"]
        ids: set[str] = set()
        change = (changes or {}).get("users")
        if isinstance(change, Change) and change.tids is not None:  # as the changes scan collected them
            ids.update(str(row[0]) for row in change.carried if row[0] is not None)
        else:
            parts.append(f"SELECT t.id::text FROM {rel('users')} t WHERE {changed_sql(window)}")
        cur.execute(" UNION ".join(parts), {"x": since})
        ids |= {r[0] for r in cur.fetchall() if r[0] is not None} | set(base.kept.results[("USR003", "users")][1] or ())
        listed_ids = _array(ctx, sorted(ids), "text")
        where = f"{usr003_where(ctx)} AND t.id IN (SELECT CAST(k AS {typ}) FROM unnest({listed_ids}) k)"
        cur.execute(f"SELECT t.id::text FROM {rel('users')} t WHERE {where}")
        violators = [r[0] for r in cur.fetchall()]
        out["USR003"] = (Outcome("USR003", "users", len(violators), sample=tuple(violators[:n])), violators)
    return out


def _old_key_members(ctx: CheckContext, codes: Sequence[str]) -> dict[str, list[str]]:
    """Gives the violating keys of BUD001/BUD002 (JSON (user_id, day, category) triples) and USR003 (user ids), read in
    full, for a recorded run whose next incremental check may use the change log (a rule whose read failed is
    left out: the next check runs it in full)."""
    from .rules import transaction_keys
    from .rules.users import usr003_where

    out: dict[str, list[str]] = {}
    if "USR003" in codes:
        rows = _guarded(ctx, f"SELECT t.id::text FROM {rel('users')} t WHERE {usr003_where(ctx)}", [BY_CODE["USR003"]])
        if rows is not None:
            out["USR003"] = [r[0] for r in rows]
    bud = frozenset(codes) & {"BUD001", "BUD002"}
    if bud:
        # As the engine runs the statement (transaction_keys.evaluate): streams, no hash grouping, put back after.
        statement = transaction_keys.shared_sql(ctx, bud, within=lambda branch, table: "true").replace("%(n)s", "0")
        with transaction_keys.streamed(ctx.cur):
            rows = _guarded(ctx, statement, [BY_CODE[c] for c in sorted(bud)])
        if rows is not None:
            for code, i in (("BUD001", 10), ("BUD002", 11)):
                if code in bud:
                    out[code] = list(rows[0][i] or ())
    return out


def _members(ctx: CheckContext, code: str) -> list[str] | None:
    """Gives the members (primary keys) of every violating group of a duplicate rule, read in full (what a
    recorded run keeps when it did not evaluate the rule incrementally), or None when the read failed."""
    if code == "DUP001":
        statement = f"SELECT unnest(d.ids) FROM ({dup001_grouped_sql(ctx)}) d"
    elif code == "DUP002":
        key = ", ".join(GROUP_KEYS[code])
        statement = (f"SELECT t.id::text FROM {rel('daily_plan')} t WHERE ROW({key})::text IN ("
                     f"SELECT ROW(d.user_id, d.day, d.category)::text FROM ({dup002_grouped_sql(ctx)}) d)")
    else:
        statement = f"SELECT unnest(ids) FROM ({dup003_sql(ctx, members=True)}) m"
    rows = _guarded(ctx, statement, [BY_CODE[code]])
    return None if rows is None else [r[0] for r in rows]


def _keep(ctx: CheckContext, concrete: Sequence[Rule], results: Sequence[Result],
          keys: dict[tuple[str, str], list[str]], changes: dict[str, Change | str],
          states: dict[str, State], fingerprint: str, opts: dict[str, Any],
          snap: str, xmin: int, xmax: int, datoid: int, reset: datetime | None, today: date) -> Kept:
    """Gives what this run keeps: its snapshot, the tables' rows and every violating key of its row rules.

    The keys of a table's failing row rules are read in one scan (the rules' own conditions and joins, as
    the engine counts them). A rule with more violators than an incremental check would look up (see
    _verdict) keeps none: the next check reads it in full anyway. A read that fails keeps nothing for those
    rules (the next check reads them in full), and the check goes on.
    """
    tables: dict[str, TableState] = {}
    for table, (oid, node, kind, counters, shape) in states.items():
        if kind != "r":
            continue
        change = changes.get(table)
        if isinstance(change, Change):
            rows, young = change.rows, change.young
        else:
            row = _guarded(ctx, f"SELECT count(*), {_young_sql(_young_window(ctx.cur, xmin, xmax))} "
                                f"FROM {rel(table)} t", ())
            if row is None:
                continue
            rows, young = int(row[0][0]), _young(row[0][1])
        tables[table] = TableState(oid, node, rows, counters, shape, young)
    by_key = {(r.code, str(r.table or "(schema)")): r for r in concrete}
    kept_results: dict[tuple[str, str], tuple[Result, list[str] | None]] = {}
    wanted: dict[str, list[RowRule]] = {}
    old_keys: list[str] = []
    for res in results:
        rule = by_key.get((res.code, res.table))
        violators: list[str] | None = None
        if (isinstance(rule, RowRule) and res.status in (Status.PASS, Status.FAIL) and rule.table
                and (ctx.schema.keys.get(rule.table) or rule.table in ctx.schema.primary_keys)):
            if res.count == 0:
                violators = []
            elif (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            elif res.count <= len(res.sample):  # the sample (by the same row key, same snapshot) holds them all
                violators = list(res.sample)
            elif rule.table in tables and res.count <= max(1000, tables[rule.table].rows // 20):
                wanted.setdefault(rule.table, []).append(rule)
        elif (res.code in GROUPED and rule is BY_CODE.get(res.code) and res.status in (Status.PASS, Status.FAIL)
              and ctx.schema.keys.get(res.table)):
            if res.count == 0:
                violators = []
            elif (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            else:
                started = time.perf_counter()
                violators = _members(ctx, res.code)
                _timing(ctx, f"keep:{res.code}", (res.code,), (res.table,), started)
        elif res.code in OLD_KEYS and rule is BY_CODE.get(res.code) and res.status in (Status.PASS, Status.FAIL):
            if (res.code, res.table) in keys:
                violators = keys[(res.code, res.table)]
            elif res.count == 0:
                violators = []
            else:
                old_keys.append(res.code)
        kept_results[(res.code, res.table)] = (res, violators)
    if old_keys and _log_installed(ctx.cur):
        started = time.perf_counter()
        for code, found in _old_key_members(ctx, old_keys).items():
            table = str(BY_CODE[code].table)
            kept_results[(code, table)] = (kept_results[(code, table)][0], found)
        _timing(ctx, "keep:change_log", tuple(old_keys), ("transactions", "daily_plan", "users"), started)
    for table, members in wanted.items():
        conditions = [f"coalesce({engine._condition(ctx, r)}, false)" for r in members]
        started = time.perf_counter()
        rows_read = _guarded(ctx, f"SELECT {ctx.schema.row_key(table)}, {', '.join(conditions)} FROM {rel(table)} t "
                                  f"{' '.join(engine.pass_joins(members))} WHERE {' OR '.join(conditions)}", members)
        _timing(ctx, f"keep:{table}", tuple(r.code for r in members), (table,), started)
        if rows_read is None:
            continue
        for i, rule in enumerate(members, start=1):
            res = kept_results[(rule.code, table)][0]
            kept_results[(rule.code, table)] = (res, [row[0] for row in rows_read if row[i]])
    return Kept(fingerprint, opts, snap, xmin, xmax, datoid, reset, today, tables, kept_results)


def _guarded(ctx: CheckContext, statement: str, rules: Sequence[Rule]) -> list[tuple[Any, ...]] | None:
    """Gives the rows of the rules' statement run in a savepoint, or None when it failed (the snapshot goes on)."""
    try:
        with ctx.cur.connection.transaction(), engine.rules_search_path(ctx.cur, rules):
            ctx.cur.execute(statement)
            return ctx.cur.fetchall()
    except psycopg.Error as exc:
        if engine.recovery_conflict(exc) or ctx.cur.connection.closed:
            raise
        return None


def annotate(results: Sequence[Result], out: Outcome_) -> list[Result]:
    """Gives the results with how each was evaluated (full or incremental, and the fallback's reason)."""
    annotated = []
    for res in results:
        how, why = out.evaluated.get((res.code, res.table)) or out.evaluated.get((res.code, "(schema)"),
                                                                                   ("full", out.reason))
        annotated.append(replace(res, evaluated=how, evaluated_reason=why))
    return annotated
