"""`check --incremental` as a whole: the base, the changes, each rule's verdict, the partial re-reads on the
check's connections at once, and the report's annotations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import psycopg.sql

from ...findings import Result, Severity
from ...runs.check_bases import Base, Kept, load
from .. import engine
from ..rule_registry import BY_CODE
from ..rules.base import Family, RowRule, Rule
from ..rules.context import CheckContext, Outcome
from . import touched_keys
from .changes import MAX_BASE_AGE_S, Change, _changes, _now, _states, _whole_run_reason, _window
from .groups import _groups
from .identity import catalogue_fingerprint, option_key
from .keep import _keep
from .old_keys import _log_proof, _old_key_rules
from .row_reads import _restricted
from .statements import _timing
from .verdict import GROUPED, _joined_unchanged, _spread, _spread_verdict, _verdict, reads

RunRules = Callable[[Sequence[Rule]], list[Result]]


@dataclass
class Outcome_:
    """How the incremental check went: which base, and per (code, table) how each result was evaluated."""

    mode: str = "full"
    base_run: str | None = None
    reason: str | None = None  # why the whole run is full
    evaluated: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)


def _severity(code: str) -> Severity:
    """Gives a stored result's severity: the catalogue's (a team rule's base result is never reused: its SQL
    runs in full every time, so any severity serves)."""
    return BY_CODE[code].severity if code in BY_CODE else next(iter(BY_CODE.values())).severity


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
                 today, helpers) if keep else None
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
        if one.code in touched_keys.KEYED:
            continue
        jobs.append((sizes.get(GROUPED[one.code], 0.0) / 2, f"incremental:{one.code}", [one],
                     lambda w, win, r=one: (done_group(r), _groups(w, r, base, win))))  # type: ignore[misc]

    # BUD001, BUD002, DUP002 and DUP003: the keys a change touched, found first (a job that adds the reads of
    # those keys to the queue, in halves of users, one per connection), then each half read whole.
    keyed = [r for r in (*grouped, *logged) if r.code in touched_keys.KEYED]
    logged = [r for r in logged if r.code not in touched_keys.KEYED]
    producing = [0]
    cond = threading.Condition(lock)

    def done_keyed(runs: list[touched_keys.Found | None]) -> None:
        codes = frozenset(r.code for r in keyed)
        if any(run is None for run in runs):  # a half failed: the worker sent its rules to the full run
            return
        found = touched_keys.merged([run for run in runs if run is not None], codes, ctx.options.sample)
        for rule in keyed:
            keys[(rule.code, str(rule.table))] = found.kept[rule.code]
            results.append(engine.result(rule, found.outcomes[rule.code]))

    def find_keys(w: CheckContext, win: int) -> tuple[Callable[[Any], None], Any]:
        from ...runs.change_log import LOG

        codes = frozenset(r.code for r in keyed)
        started = time.perf_counter()
        written = {t: (c.carried if isinstance(c := changes.get(t), Change) and c.tids is not None else None)
                   for t in ("transactions", "daily_plan")}
        found = touched_keys.affected(w, codes, base, win, LOG, written)
        runs = touched_keys.halves(found, 1 + len(helpers))
        _timing(w, f"incremental:keys ({len(found):,} keys)", tuple(sorted(codes)), ("transactions", "daily_plan"),
                started)
        slots: list[touched_keys.Found | None] = [None] * len(runs)
        left = [len(runs)]

        def finish_run(i: int) -> Callable[[Any], None]:
            def finish(one: touched_keys.Found) -> None:
                slots[i] = one
                left[0] -= 1
                if left[0] == 0:
                    done_keyed(slots)
            return finish

        def read(i: int, chosen: list[touched_keys.Key]) -> Callable[[CheckContext, int], Any]:
            return lambda w2, _: (finish_run(i), touched_keys.evaluate(w2, codes, chosen))

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
                if engine.recovery_conflict(exc, wctx.cur.connection) or wctx.cur.connection.closed:
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


def annotate(results: Sequence[Result], out: Outcome_) -> list[Result]:
    """Gives the results with how each was evaluated (full or incremental, and the fallback's reason)."""
    annotated = []
    for res in results:
        how, why = out.evaluated.get((res.code, res.table)) or out.evaluated.get((res.code, "(schema)"),
                                                                                   ("full", out.reason))
        annotated.append(replace(res, evaluated=how, evaluated_reason=why))
    return annotated
