"""Runs chosen rules inside one snapshot: one scan per table for row rules, one pass per family for the rest.

Each pass runs in a savepoint, so a rule that fails becomes an `error` result and the others still run.
Rules whose table or column is absent are `skipped`; rules a validated constraint rules out are
`guaranteed` and cost no scan.

On a hot standby, replay may cancel a pass (a recovery conflict: SQLSTATE 40001, or 57P04 when the
database is dropped). Inside a savepoint the server ends the whole session, so a retry needs a new
connection and a new snapshot: `reopen` gives one, the pass runs again (up to RETRIES more times), and the
passes that follow use the new snapshot. A pass still cancelled after that becomes `error` for its rules.
A session lost for any other reason (restart, shutdown, terminated backend) is not a rule's failure: it
propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from ..errors import is_connection_lost
from ..findings import Result, Status
from .base import Family, RowRule, Rule, ident
from .catalogue import BY_CODE, FAMILY_OF
from .context import CheckContext, Outcome

RETRIES = 2  # a pass cancelled by a recovery conflict runs up to 1 + RETRIES times, each in a new snapshot
# serialization_failure (a read-only snapshot gets it only from replay), database_dropped
CONFLICT_STATES = ("40001", "57P04")
Reopen = Callable[[], psycopg.Cursor[Any]]


def run(ctx: CheckContext, rules: Sequence[Rule], reopen: Reopen | None = None,
        extra: Sequence[Family] = ()) -> list[Result]:
    """Gives one Result per rule and table, in catalogue order.

    `reopen` gives a cursor in a new snapshot (a new connection) after a recovery conflict; ctx.cur is
    replaced by it. Without it a conflict is an `error` at once. `extra`: families beyond the catalogue
    (the project file's rules) that evaluate some of `rules`.
    """
    families = {**FAMILY_OF, **{r.code: f for f in extra for r in f.rules}}
    results: list[Result] = []
    row_rules: dict[str, list[RowRule]] = {}
    family_rules: dict[str, list[Rule]] = {}
    for rule in expanded(ctx, rules, families):
        early = _precheck(ctx, rule)
        if early is not None:
            results.append(early)
        elif isinstance(rule, RowRule) and rule.table:
            row_rules.setdefault(rule.table, []).append(rule)
        else:
            family_rules.setdefault(families[rule.code].name, []).append(rule)
    for table, table_rules in row_rules.items():
        results.extend(_row_pass(ctx, table, table_rules, reopen))
    for members in family_rules.values():
        results.extend(_family_pass(ctx, families[members[0].code], members, reopen))
    return sorted(results, key=lambda r: (r.section, r.code, r.table))


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
        kind = "column" if "." in missing else "table"
        return _absent(rule, table, Status.SKIPPED, f"{kind} {missing} is absent")
    if isinstance(rule, RowRule) and rule.table:
        if ctx.since_filter(rule.table) == "false":
            return _absent(rule, table, Status.SKIPPED, f"--since: {rule.table} has no creation time")
        if rule.fk and (con := ctx.schema.validated_fk(rule.table, *rule.fk)):
            return _absent(rule, table, Status.GUARANTEED, f"guaranteed by foreign key {con.name}")
        if rule.not_null_guarantees and rule.column and ctx.schema.not_null(rule.table, rule.column):
            return _absent(rule, table, Status.GUARANTEED, f"guaranteed by NOT NULL on {rule.table}.{rule.column}")
    if rule.guaranteed_by_check and (check := ctx.schema.validated_check(rule.guaranteed_by_check)):
        return _absent(rule, table, Status.GUARANTEED, f"guaranteed by check constraint {check.name}")
    return None


def _condition(ctx: CheckContext, rule: RowRule) -> str:
    live = rule.live_only and rule.table is not None and ctx.schema.has(f"{rule.table}.deleted_at")
    return f"({rule.predicate})" + (" AND t.deleted_at IS NULL" if live else "")


def row_pass_sql(ctx: CheckContext, table: str, rules: Sequence[RowRule]) -> str:
    """Gives the one statement that counts and samples every row rule of a table in a single scan."""
    pk = ctx.schema.primary_keys.get(table, "id")
    joins: dict[str, str] = {}
    for rule in rules:
        for join in rule.joins:
            joins.setdefault(join.alias, f"LEFT JOIN {join.table} {join.alias} ON {join.on}")
    columns = []
    for rule in rules:
        cond = _condition(ctx, rule)
        columns.append(f"count(*) FILTER (WHERE {cond})")
        columns.append(f'(array_agg(t.{ident(pk)}::text) FILTER (WHERE {cond}))[1:{int(ctx.options.sample)}]')
    since = ctx.since_filter(table)
    return (f'SELECT {", ".join(columns)} FROM {ident(table)} t {" ".join(joins.values())}'
            + (f" WHERE {since}" if since else ""))


def recovery_conflict(exc: BaseException) -> bool:
    """Tells whether exc is a query (or session) cancelled by a standby's replay."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate in CONFLICT_STATES


def _timed(ctx: CheckContext, work: Callable[[], list[Outcome]], reopen: Reopen | None) -> tuple[list[Outcome], int]:
    """Runs work in a savepoint; after a recovery conflict, again in a new snapshot (see the module's doc)."""
    for attempt in range(RETRIES + 1):
        started = time.perf_counter()
        try:
            with ctx.cur.connection.transaction():  # a savepoint: a failure here does not abort the snapshot
                outcomes = work()
            return outcomes, int((time.perf_counter() - started) * 1000)
        except psycopg.Error as exc:
            if reopen is None or not recovery_conflict(exc):
                raise
            # The old snapshot is the one replay conflicts with, and the session may be gone: always reopen,
            # also after the last attempt, so that the passes that follow have a snapshot to run in.
            ctx.cur = reopen()
            if attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


def _reraise_if_lost(ctx: CheckContext, exc: psycopg.Error) -> None:
    """Re-raises exc when the session is gone for another reason than replay: that is no rule's failure."""
    if not recovery_conflict(exc) and is_connection_lost(exc, ctx.cur.connection):
        raise exc


def _row_pass(ctx: CheckContext, table: str, rules: list[RowRule], reopen: Reopen | None) -> list[Result]:
    def work() -> list[Outcome]:
        ctx.cur.execute(row_pass_sql(ctx, table, rules))
        row = ctx.cur.fetchone()
        assert row is not None
        return [Outcome(r.code, table, int(row[2 * i]), sample=tuple(row[2 * i + 1] or ()))
                for i, r in enumerate(rules)]

    try:
        outcomes, ms = _timed(ctx, work, reopen)
    except psycopg.Error as exc:
        _reraise_if_lost(ctx, exc)
        if len(rules) == 1 or recovery_conflict(exc):
            return [_error(r, table, exc) for r in rules]
        # Find the failing rule(s): evaluate each alone; the others keep their results.
        return [res for r in rules for res in _row_pass(ctx, table, [r], reopen)]
    return [result(r, o, ms) for r, o in zip(rules, outcomes, strict=True)]


def _family_pass(ctx: CheckContext, family: Family, rules: list[Rule], reopen: Reopen | None) -> list[Result]:
    assert family.evaluate is not None, f"family {family.name} has rules that need an evaluator"
    evaluate = family.evaluate
    try:
        outcomes, ms = _timed(ctx, lambda: evaluate(ctx, tuple(rules)), reopen)
    except psycopg.Error as exc:
        _reraise_if_lost(ctx, exc)
        if len(rules) > 1 and not recovery_conflict(exc):
            return [res for r in rules for res in _family_pass(ctx, family, [r], reopen)]
        return [_error(r, r.table or "(schema)", exc) for r in rules]
    chosen = {r.code: r for r in rules}
    return [result(chosen.get(o.code) or BY_CODE[o.code], o, ms) for o in outcomes]


def _error(rule: Rule, table: str, exc: psycopg.Error) -> Result:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.errors.QueryCanceled):
        text = f"cancelled: {text} (raise --statement-timeout, or run it on a replica)"
    elif recovery_conflict(exc):
        text = (f"cancelled by a recovery conflict on the standby, also when retried in a new snapshot: {text} "
                "(raise max_standby_streaming_delay or set hot_standby_feedback = on; see docs/replicas.md)")
    return _absent(rule, table, Status.ERROR, text)
