"""Runs chosen rules inside one snapshot: one scan per table for row rules, one pass per family for the rest.

A family may borrow another family's rule when both run (Family.borrows: DUP002 is answered by the budget
rules' grouping of daily_plan), and may split its shared pass into parts, two per connection (Family.split:
ranges of user ids; see PARTS_PER_CONNECTION); the parts' results are merged into one per rule and table
(counts added, samples merged).

Each pass runs in a savepoint, so a rule that fails becomes an `error` result and the others still run.
Rules whose table or column is absent are `skipped`; rules a validated constraint rules out are
`guaranteed` and cost no scan.

On a hot standby, replay may cancel a pass (a recovery conflict: SQLSTATE 40001, or 57P04 when the
database is dropped). Inside a savepoint the server ends the whole session, so a retry needs a new
connection and a new snapshot: `reopen` gives one (check.snapshot), the pass runs again (up to RETRIES more
times, after pauses), and the passes that follow use the new snapshot. A pass still cancelled after that
becomes `error` for its rules. On a standby a session lost without a SQLSTATE may be replay's too: `reopen`
decides, by the standby's own count of the work it cancelled. A session lost for any other reason (restart,
shutdown, terminated backend, dropped network) is not a rule's failure: it propagates.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from ..database.connection import CATALOG_SEARCH_PATH
from ..database.errors import (
    ON_STANDBY,
    DatabaseStateError,
    MitaIntegrityError,
    connection_lost,
    is_connection_lost,
    lost_on_standby,
    replay_refused_start,
)
from ..findings import PassTiming, Result, Status
from .rule_registry import BY_CODE, FAMILY_OF
from .rules.base import Family, RowRule, Rule, each_rule, rel
from .rules.context import CheckContext, Outcome

RETRIES = 2  # a pass cancelled by a recovery conflict runs up to 1 + RETRIES times, each in a new snapshot
# Seconds to wait before each retry: replay's conflicts come in bursts (a vacuum's records, table after table),
# and a retry at once would meet the same burst.
RETRY_PAUSES_S = (0.25, 1.0)
# serialization_failure (a read-only snapshot gets it only from replay), database_dropped
CONFLICT_STATES = ("40001", "57P04")
Reopen = Callable[[psycopg.Error], psycopg.Cursor[Any]]  # a cursor in a new snapshot, after that conflict


def team_rule(rule: Rule) -> bool:
    """Tells whether a rule is the team's (the project file's): not one of the catalogue's codes."""
    return rule.code not in BY_CODE


def search_path_for(rules: Sequence[Rule]) -> str:
    """Gives the search_path a pass runs under: the catalogue's statements see pg_catalog alone (an object in
    public with a better-matching signature cannot stand in for a built-in, see CATALOG_SEARCH_PATH); a team
    rule names its tables unqualified, so its pass (never shared with a built-in rule) sees public."""
    return "public" if any(team_rule(r) for r in rules) else CATALOG_SEARCH_PATH


@contextmanager
def rules_search_path(cur: psycopg.Cursor[Any], rules: Sequence[Rule], *, serial: bool = False) -> Iterator[None]:
    """Runs the rules' own statements under their search_path (search_path_for), then gives public back.

    `serial`: with serial plans too (max_parallel_workers_per_gather = 0), then the server's own setting back.
    Set with the search_path, in the same round trip: a statement of the check's own between the passes would
    run under the rules' --statement-timeout and, cancelled, end the whole check instead of one pass."""
    serial_on, serial_off = (("; SET LOCAL max_parallel_workers_per_gather = 0",
                              "; SET LOCAL max_parallel_workers_per_gather = DEFAULT") if serial else ("", ""))
    cur.execute(f"SET LOCAL search_path = {search_path_for(rules)}{serial_on}")  # constants
    yield
    cur.execute(f"SET LOCAL search_path = public{serial_off}")  # what the rest of the snapshot's statements expect


@dataclass(frozen=True)
class Pass:
    """One unit of work of a check: a table's row rules in one scan, or a family's rules (or one of them)."""

    name: str
    rules: tuple[Rule, ...]
    tables: tuple[str, ...]
    cost: float  # rows it is expected to read: the biggest passes start first when two connections share them
    family: Family | None = None  # the family that evaluates a non-row pass
    part: Any = None  # one part of a split family pass (Family.split): its results are merged with the others'
    part_index: int = 0  # its place among the parts (their keys' order)

    def run(self, ctx: CheckContext, reopen: Reopen | None) -> list[Result]:
        if self.family is None:
            return _row_pass(ctx, self.tables[0], [r for r in self.rules if isinstance(r, RowRule)], reopen)
        return _family_pass(ctx, self.family, list(self.rules), reopen, self.part)


def families_of(extra: Sequence[Family] = ()) -> dict[str, Family]:
    """Gives each code's family: the catalogue's, then `extra` on top (the project file's rules, and built-in
    families whose expansion leaves its excluded tables out)."""
    return {**FAMILY_OF, **{r.code: f for f in extra for r in f.rules}}


# A split pass is cut into more parts than there are connections: the parts, the smallest passes, go last and
# each to the connection that is free first, so the connections finish about together. Measured at scale 1 at
# head, two parts left one connection idle for 1.8 s at the end.
PARTS_PER_CONNECTION = 2


def plan(ctx: CheckContext, rules: Sequence[Rule], sizes: dict[str, float] | None = None,
         extra: Sequence[Family] = (), connections: int = 1) -> tuple[list[Result], list[Pass]]:
    """Gives the results decided without reading a table (skipped, guaranteed) and the passes that remain.

    Row rules of one table share one scan; a family's rules are one pass, except where the family says its
    rules share no work (then each is a pass of its own, so that two connections can run them at once).
    `extra`: families beyond the catalogue (see families_of). With more than one connection, a family that
    can split its shared pass (Family.split) gives PARTS_PER_CONNECTION passes per connection, each a part of its
    keys.
    """
    sizes = sizes or {}
    families = families_of(extra)
    results: list[Result] = []
    row_rules: dict[tuple[str, bool], list[RowRule]] = {}
    family_rules: dict[str, list[Rule]] = {}
    for rule in expanded(ctx, rules, families):
        early = _precheck(ctx, rule)
        if early is not None:
            results.append(early)
        elif isinstance(rule, RowRule) and rule.table:
            # A team predicate scans apart: its pass sees public, where a built-in's must not look.
            row_rules.setdefault((rule.table, team_rule(rule)), []).append(rule)
        else:
            family_rules.setdefault(families[rule.code].name, []).append(rule)
    _borrow(family_rules, families)
    passes = [Pass(f"rows:{table}" + (":team" if team else ""), tuple(members), (table,), sizes.get(table, 0.0))
              for (table, team), members in row_rules.items()]
    for family_name, members in family_rules.items():
        family = families[members[0].code]
        alone = [m for m in members if family.separable or m.code in family.apart]
        rest = [m for m in members if m not in alone]
        groups = [[m] for m in alone] + ([rest] if rest else [])
        for group in groups:
            needed = (n if ctx.schema.has(n) and n in ctx.schema.columns else n.rpartition(".")[0] or n
                      for r in group for n in (r.table, *r.requires) if n)
            tables = tuple(dict.fromkeys(needed))
            name = f"{family_name}:{group[0].code}" if len(groups) > 1 and len(group) == 1 else family_name
            cost = sum(sizes.get(t, 0.0) for t in tables)
            parts = (family.split(ctx, tuple(group), PARTS_PER_CONNECTION * connections)
                     if family.split and family.evaluate_part and group is rest and connections > 1 else [])
            if parts:
                passes.extend(Pass(f"{name}[{i + 1}/{len(parts)}]", tuple(group), tables, cost / len(parts), family,
                                   part, i) for i, part in enumerate(parts))
            else:
                passes.append(Pass(name, tuple(group), tables, cost, family))
    return results, passes


def _borrow(family_rules: dict[str, list[Rule]], families: Mapping[str, Family]) -> None:
    """Moves each borrowed rule into the pass of the family that borrows it, when a rule of that family runs in
    its shared pass too (not apart): one statement then answers both (DUP002 in the budget rules' grouping)."""
    for name, members in list(family_rules.items()):
        if not members:  # all lent to a family before it
            continue
        family = families[members[0].code]
        if not family.borrows or not any(m.code not in family.apart for m in members):
            continue
        for lender, lent in family_rules.items():
            if lender == name:
                continue
            moved = [r for r in lent if r.code in family.borrows]
            if moved:
                lent[:] = [r for r in lent if r not in moved]
                members.extend(moved)
    for name in [n for n, members in family_rules.items() if not members]:
        del family_rules[name]


def run(ctx: CheckContext, rules: Sequence[Rule], reopen: Reopen | None = None,
        helpers: Sequence[CheckContext] = (), sizes: dict[str, float] | None = None,
        extra: Sequence[Family] = ()) -> list[Result]:
    """Gives one Result per rule and table, in catalogue order.

    `reopen` gives a cursor in a new snapshot (a new connection) after a recovery conflict; ctx.cur is
    replaced by it. Without it a conflict is an `error` at once. `helpers` are contexts on other
    connections in the very same snapshot (imported with SET TRANSACTION SNAPSHOT): the passes are shared
    between ctx and them, the biggest first. Each pass's time is appended to ctx.passes. `extra`: families
    beyond the catalogue (the project file's rules and exclusions, see families_of).
    """
    results, passes = plan(ctx, rules, sizes, extra, connections=1 + len(helpers))
    if not helpers:
        for p in passes:
            results.extend(_recorded(ctx, p, reopen))
        return sorted(results, key=lambda r: (r.section, r.code, r.table))
    # Each connection keeps a core busy, so a parallel plan's workers would only compete with the other
    # connection's pass for the same cores, and a parallel plan costs more CPU than a serial one (the
    # transactions row pass at scale 0.25: 0.54 s on three processes, 1.0 s on one). Serial plans for these
    # passes (each sets it and puts it back: see rules_search_path).
    for c in (ctx, *helpers):
        c.serial_plans = True
    queue = sorted(passes, key=lambda p: -p.cost)
    lock = threading.Lock()
    done: list[tuple[Pass, list[Result]]] = []

    def worker(wctx: CheckContext, wreopen: Reopen | None) -> list[Result]:
        while True:
            with lock:
                if not queue:
                    return []
                p = queue.pop(0)
            found = _recorded(wctx, p, wreopen)
            with lock:
                done.append((p, found))

    with ThreadPoolExecutor(max_workers=1 + len(helpers)) as pool:
        futures = [pool.submit(worker, ctx, reopen), *(pool.submit(worker, h, None) for h in helpers)]
        try:
            for future in futures:
                results.extend(future.result())
        except BaseException:
            # Ctrl-C, or a pass that lost its session: leaving the pool waits for its threads, so no pass may
            # start and the running statements are cancelled until the threads are done (a cancelled pass
            # retries its rules one by one; each is cancelled in turn) — else a Ctrl-C waits for all of them.
            with lock:
                queue.clear()
            while not all(f.done() for f in futures):
                for c in (ctx, *helpers):
                    c.cur.connection.cancel_safe(timeout=5)
                wait(futures, timeout=0.1)
            raise
    for c in (ctx, *helpers):
        c.serial_plans = False
    for h in helpers:
        ctx.passes.extend(h.passes)
    return sorted(results + _merged(ctx, done), key=lambda r: (r.section, r.code, r.table))


def _merged(ctx: CheckContext, done: list[tuple[Pass, list[Result]]]) -> list[Result]:
    """Gives the passes' results with those of a split pass's parts made one per rule and table: counts added,
    an error in any part an error, samples merged (the smallest ids, or the parts' in key order) and cut to
    --sample."""
    out: list[Result] = []
    parts: dict[tuple[str, str], list[tuple[int, Result]]] = {}
    by_id: set[str] = set()
    for p, results in done:
        if p.part is None or p.family is None:
            out.extend(results)
            continue
        by_id.update(p.family.sample_by_id)
        for r in results:
            parts.setdefault((r.code, r.table), []).append((p.part_index, r))
    for (code, _), found in parts.items():
        out.append(_merge([r for _, r in sorted(found, key=lambda f: f[0])], code in by_id, ctx.options.sample))
    return out


def _merge(found: list[Result], by_id: bool, sample: int) -> Result:
    first = found[0]
    duration = sum(r.duration_ms for r in found)
    error = next((r for r in found if r.status is Status.ERROR), None)
    if error is not None:
        return replace(error, duration_ms=duration)
    if all(r.status in (Status.GUARANTEED, Status.SKIPPED) for r in found):
        return replace(first, duration_ms=duration)
    count = sum(r.count for r in found)
    groups = None if all(r.groups is None for r in found) else sum(r.groups or 0 for r in found)
    keys = [k for r in found for k in r.sample]
    keys = sorted(keys)[:sample] if by_id else keys[:sample]
    return replace(first, status=Status.FAIL if count > 0 else Status.PASS, count=count, groups=groups,
                   sample=tuple(keys) if count else (), duration_ms=duration)


def _recorded(ctx: CheckContext, p: Pass, reopen: Reopen | None) -> list[Result]:
    started = time.perf_counter()
    out = p.run(ctx, reopen)
    ctx.passes.append(PassTiming(p.name, tuple(dict.fromkeys(r.code for r in p.rules)), p.tables,
                                 int((time.perf_counter() - started) * 1000), ctx.connection))
    return out


def expanded(ctx: CheckContext, rules: Sequence[Rule], families: Mapping[str, Family] = FAMILY_OF) -> list[Rule]:
    """Gives the rules with every per-table template replaced by its concrete rules of the live schema."""
    out: list[Rule] = []
    for rule in rules:
        family = families.get(rule.code)
        if isinstance(rule, RowRule) and rule.table is None and family and family.expand is not None:
            out.extend(r for r in family.expand(ctx.schema) if r.code == rule.code)
        else:
            out.append(rule)
    return out


def result(rule: Rule, outcome: Outcome, duration_ms: int = 0) -> Result:
    """Gives the Result of a rule from what its evaluation found."""
    status = outcome.status or (Status.FAIL if outcome.count > 0 else Status.PASS)
    return Result(
        code=rule.code, name=rule.name, section=rule.section, severity=rule.severity, status=status,
        table=outcome.table, column=outcome.column or rule.column, count=outcome.count,
        groups=outcome.groups, message=outcome.message or rule.message, sample=outcome.sample,
        fix_available=rule.fix_available, fix_safety=rule.repair_safety, reason=outcome.reason,
        duration_ms=duration_ms, hint=rule.hint, unit=rule.unit,
    )


def _absent(rule: Rule, table: str, status: Status, reason: str) -> Result:
    return result(rule, Outcome(rule.code, table, status=status, reason=reason))


def _precheck(ctx: CheckContext, rule: Rule) -> Result | None:
    table = rule.table or "(schema)"
    if rule.physical and not ctx.options.physical:
        return _absent(rule, table, Status.SKIPPED, "runs only with --physical")
    missing = ctx.schema.missing(rule)
    if missing:
        return _absent(rule, table, Status.SKIPPED, f"{ctx.schema.missing_kind(missing)} {missing} is absent")
    if isinstance(rule, RowRule) and rule.table and ctx.since_filter(rule.table) == "false":
        return _absent(rule, table, Status.SKIPPED, f"--since: {rule.table} has no creation time")
    if ctx.options.no_guarantees:
        return None
    if isinstance(rule, RowRule) and rule.table:
        if rule.fk and (con := ctx.schema.validated_fk(rule.table, *rule.fk)):
            return _absent(rule, table, Status.GUARANTEED, f"guaranteed by foreign key {con.name}")
        if rule.not_null_guarantees and rule.column and ctx.schema.not_null(rule.table, rule.column):
            return _absent(rule, table, Status.GUARANTEED, f"guaranteed by NOT NULL on {rule.table}.{rule.column}")
    if rule.table:
        for spec in rule.guaranteed_by_check:
            if check := ctx.schema.validated_check(rule.table, (spec.definition,), spec.not_null):
                return _absent(rule, table, Status.GUARANTEED, f"guaranteed by check constraint {check.name}")
    return None


def _condition(ctx: CheckContext, rule: RowRule) -> str:
    live = rule.live_only and rule.table is not None and ctx.schema.has(f"{rule.table}.deleted_at")
    return f"({rule.predicate})" + (" AND t.deleted_at IS NULL" if live else "")


_QUALIFIER = re.compile(r"(?<![\w\".])([A-Za-z_]\w*)\.(?=[A-Za-z_\"])")
_STRING = re.compile(r"'(?:[^']|'')*'")
_OWN = frozenset({"t", "public", "pg_catalog"})  # the row alias, and schemas
# An alias the fragment binds itself, in a subquery of its own (FROM public."transactions" amt006_x): it is
# resolved inside that subquery, so no other rule's join can be mistaken for it.
_BOUND = re.compile(r"\b(?:FROM|JOIN)\s+(?:[\w.\"]+)\s+(?:AS\s+)?([A-Za-z_]\w*)", re.IGNORECASE)


def fragment_aliases(rule: RowRule) -> set[str]:
    """Gives the aliases a rule's predicate and joins name, string literals aside (t, schemas and the aliases
    of the fragment's own subqueries excluded)."""
    text = _STRING.sub("''", " ".join([rule.predicate, *(j.on for j in rule.joins)]))
    return set(_QUALIFIER.findall(text)) - _OWN - set(_BOUND.findall(text))


def pass_joins(rules: Sequence[RowRule]) -> list[str]:
    """Gives the LEFT JOINs of a combined pass; asserts that no two rules' fragments can be mistaken.

    Each rule's predicate may name only the row alias t and its own joins; an alias two rules declare must
    be the very same join. Otherwise one rule would silently test another's join (issue 13.1: REF008 read
    REF001's `users` join and passed over a real orphan).
    """
    joins: dict[str, str] = {}
    for rule in rules:
        own = {j.alias for j in rule.joins} | set(rule.scoped)
        stray = fragment_aliases(rule) - own
        assert not stray, f"{rule.code}: its SQL names {sorted(stray)}, which are not its own joins"
        for join in rule.joins:
            assert joins.setdefault(join.alias, join.sql) == join.sql, (
                f"{rule.code}: alias {join.alias} collides with another rule's join in the same pass")
    return list(joins.values())


def row_pass_sql(ctx: CheckContext, table: str, rules: Sequence[RowRule]) -> str:
    """Gives the one statement that counts every row rule of a table in a single scan (samples come later).

    Counts only: no array aggregate, so the planner may run the scan in parallel.
    """
    joins = pass_joins(rules)
    columns = [f"count(*) FILTER (WHERE {_condition(ctx, rule)})" for rule in rules]
    since = ctx.since_filter(table)
    return (f'SELECT {", ".join(columns)} FROM {rel(table)} t {" ".join(joins)}'
            + (f" WHERE {since}" if since else ""))


def sample_sql(ctx: CheckContext, rule: RowRule) -> str:
    """Gives a bounded query of up to --sample keys of a failing row rule (memory does not grow with violations)."""
    assert rule.table is not None
    extra = [c for c in (ctx.since_filter(rule.table),) if c]
    if rule.live_only and ctx.schema.has(f"{rule.table}.deleted_at"):
        extra.append("t.deleted_at IS NULL")
    source, where = rule.selection(" AND ".join(extra))
    return f"SELECT {ctx.schema.row_key(rule.table)} FROM {source} WHERE {where} LIMIT {int(ctx.options.sample)}"


def recovery_conflict(exc: BaseException, conn: psycopg.Connection[Any] | None = None) -> bool:
    """Tells whether exc is a query (or session) cancelled by a standby's replay.

    Replay that ends a session may reach the client as a bare lost connection: no SQLSTATE, only libpq's
    "server closed the connection unexpectedly" (the server closed the socket before its FATAL was read).
    On a connection to a hot standby (`conn`, by the server's own report) that counts as a conflict too: the
    retry connects again, and a server that is really gone then fails to connect, in one line. So does a
    connection replay ended while it started (database.errors.replay_refused_start)."""
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate in CONFLICT_STATES or replay_refused_start(exc):
        return True
    return lost_on_standby(exc, conn)


def _timed(ctx: CheckContext, work: Callable[[], list[Outcome]], reopen: Reopen | None,
           rules: Sequence[Rule]) -> tuple[list[Outcome], int]:
    """Runs work in a savepoint under the rules' search_path; after a recovery conflict, again in a new snapshot
    (see the module's doc). Replay refusing the new session as it starts costs an attempt too."""
    cause: psycopg.Error | None = None
    for attempt in range(RETRIES + 1):
        started = time.perf_counter()
        try:
            if cause is not None and reopen is not None:
                ctx.cur = reopen(cause)
            # A savepoint (a failure here does not abort the snapshot), and the rules' search_path (a new snapshot
            # needs it again).
            with ctx.cur.connection.transaction(), rules_search_path(ctx.cur, rules, serial=ctx.serial_plans):
                outcomes = work()
            return outcomes, int((time.perf_counter() - started) * 1000)
        except psycopg.Error as exc:
            if reopen is None or not recovery_conflict(exc, ctx.cur.connection):
                raise
            cause = exc
            if attempt < RETRIES:
                pause_before_retry(attempt)
    # The old snapshot is the one replay conflicts with, and the session may be gone: a new one for the passes
    # that follow (replay refusing it too, or a loss not replay's, stops the check).
    assert cause is not None and reopen is not None
    try:
        ctx.cur = reopen(cause)
    except psycopg.Error as exc:
        if recovery_conflict(exc):
            raise stopped_by(exc, None) from None
        raise
    raise cause


def stopped_by(exc: psycopg.Error, times: int | None) -> MitaIntegrityError:
    """Gives the one-line error for a check that a standby's replay (told by the server's own words: a SQLSTATE,
    or its text as a session starts) or a lost session stopped, after `times` attempts in a row (None: not
    counted). A loss without a word that no new snapshot confirmed as replay's is told as what it looks like."""
    if exc.sqlstate in CONFLICT_STATES or replay_refused_start(exc) or getattr(exc, ON_STANDBY, False):
        return cancelled_by_replay(exc, times)
    return connection_lost(exc, "check", "nothing was changed (a check only reads)")


def cancelled_by_replay(exc: BaseException, times: int | None) -> DatabaseStateError:
    """Gives the one-line error for a check that replay on a standby stopped: how many `times` in a row it
    cancelled the check's reads or refused its new session (None: not counted)."""
    count = f" {times} times in a row" if times else ""
    reason = (str(exc).strip().splitlines() or [""])[0] or "the server closed the connection"
    return DatabaseStateError(
        f"replay on this standby cancelled the check's reads{count} ({reason}); nothing was changed (a check "
        "only reads)", "re-run it, raise max_standby_streaming_delay or set hot_standby_feedback = on on the "
                       "standby (docs/replicas.md), or point --db at the primary server")


def pause_before_retry(attempt: int) -> None:
    """Waits before the retry that follows attempt `attempt` (0 the first) after a recovery conflict."""
    time.sleep(RETRY_PAUSES_S[min(attempt, len(RETRY_PAUSES_S) - 1)])


def _reraise_if_lost(ctx: CheckContext, exc: psycopg.Error) -> None:
    """Re-raises exc when the session is gone for another reason than replay: that is no rule's failure."""
    if not recovery_conflict(exc, ctx.cur.connection) and is_connection_lost(exc, ctx.cur.connection):
        raise exc


def _row_pass(ctx: CheckContext, table: str, rules: list[RowRule], reopen: Reopen | None) -> list[Result]:
    def work() -> list[Outcome]:
        ctx.cur.execute(row_pass_sql(ctx, table, rules))
        row = ctx.cur.fetchone()
        assert row is not None
        out = []
        for rule, count in zip(rules, row, strict=True):
            sample: tuple[str, ...] = ()
            if count and ctx.options.sample > 0:
                ctx.cur.execute(sample_sql(ctx, rule))
                sample = tuple(r[0] for r in ctx.cur.fetchall())
            out.append(Outcome(rule.code, table, int(count), sample=sample))
        return out

    try:
        outcomes, ms = _timed(ctx, work, reopen, rules)
    except psycopg.Error as exc:
        _reraise_if_lost(ctx, exc)
        if len(rules) == 1 or recovery_conflict(exc, ctx.cur.connection):
            return [_error(ctx, r, table, exc) for r in rules]
        # Find the failing rule(s): evaluate each alone; the others keep their results.
        return [res for r in rules for res in _row_pass(ctx, table, [r], reopen)]
    return [result(r, o, ms) for r, o in zip(rules, outcomes, strict=True)]


def _family_pass(ctx: CheckContext, family: Family, rules: list[Rule], reopen: Reopen | None,
                 part: Any = None) -> list[Result]:
    evaluate = family.evaluate or each_rule
    if part is not None:
        assert family.evaluate_part is not None
        evaluate_part = family.evaluate_part

        def evaluate(c: CheckContext, chosen: tuple[Rule, ...]) -> list[Outcome]:
            return evaluate_part(c, chosen, part)
    try:
        outcomes, ms = _timed(ctx, lambda: evaluate(ctx, tuple(rules)), reopen, rules)
    except psycopg.Error as exc:
        _reraise_if_lost(ctx, exc)
        if len(rules) > 1 and not recovery_conflict(exc, ctx.cur.connection):
            return [res for r in rules for res in _family_pass(ctx, family, [r], reopen, part)]
        return [_error(ctx, r, r.table or "(schema)", exc) for r in rules]
    chosen = {r.code: r for r in rules}
    return [result(chosen.get(o.code) or BY_CODE[o.code], o, ms) for o in outcomes]


def _error(ctx: CheckContext, rule: Rule, table: str, exc: psycopg.Error) -> Result:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.errors.QueryCanceled):
        text = f"cancelled: {text} (raise --statement-timeout, or run it on a replica)"
    elif recovery_conflict(exc, ctx.cur.connection):
        text = (f"cancelled by a recovery conflict on the standby, also when retried in a new snapshot: {text} "
                "(raise max_standby_streaming_delay or set hot_standby_feedback = on; see docs/replicas.md)")
    return _absent(rule, table, Status.ERROR, text)
