"""The team's own rules from the project file, as rule declarations the engine runs like the built-ins.

Two shapes, both first-class (`rules`, `sql`, every report, history, alerts, `--select`):
- a row predicate on one table (`table` + `where`, the row is `t`): a plain RowRule, so it joins that
  table's one-scan pass. It is isolated from the other rules of the pass because it may reference `t`
  only (validated: it is EXPLAINed alone, where no other alias exists; the aliases it names are those its
  own subqueries bind, declared as its `scoped` aliases for the pass builder's collision assertion) and is
  one balanced expression (validated lexically: no `;`, no comment, no parenthesis closing what it did not
  open), so it cannot reach into another rule's FILTER or joins.
- a query returning the violating rows' keys (`query`): a CustomQueryRule, a rule unit with its own
  evaluation (a count, then a bounded sample of keys only when it failed) and its own psql-script
  statement; a pass of its own. Wrapped as a subquery, any statement that writes (a data-modifying WITH,
  INSERT/UPDATE/DELETE/MERGE, CREATE TABLE AS) is an error when it is EXPLAINed at validation.

Validation against the database happens inside the check's read-only snapshot, before any rule runs.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from ..database.errors import UsageError
from ..findings import FixSafety
from .engine import fragment_aliases, recovery_conflict
from .rules.base import Family, QueryRule, RowRule, Rule, literal, rel
from .rules.context import CheckContext, Outcome, Schema
from .rules.quoting import ident

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
KEY_COLUMN = "mita_key"  # the first column of a query rule's rows, renamed so that it can be referenced
NO_TABLE = "(query)"  # the table of a query rule's result when it names none
REPAIR = "none: a rule of the team's project file; `fix` lists its findings and never changes them"


@dataclass(frozen=True)
class CustomRowRule(RowRule):
    """A team rule that is a predicate on one table's rows (alias t)."""

    source: str = ""  # where it was declared, e.g. "mita-integrity.toml [[custom_rules]] #1"


@dataclass(frozen=True)
class CustomQueryRule(QueryRule):
    """A team rule whose query returns the violating rows' keys (first column: the key shown as sample)."""

    query: str = "SELECT 1 WHERE false"
    source: str = ""

    @property
    def keys(self) -> str:
        """Gives the query as a subquery whose first column is named (the key shown as sample)."""
        return f"({self.query}\n) AS q({KEY_COLUMN})"

    def count_sql(self) -> str:
        """Gives the one statement counting the rows the query returns (counts first: no array of keys)."""
        return f"SELECT count(*) FROM {self.keys}"

    def sample_sql(self, sample: int) -> str:
        """Gives a bounded query of up to `sample` keys (run only when the rule failed)."""
        return f"SELECT q.{KEY_COLUMN}::text FROM {self.keys} LIMIT {int(sample)}"


def _evaluate_query(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    """A query rule's evaluation: its count, then up to --sample keys when it found any."""
    assert isinstance(rule, CustomQueryRule)
    ctx.cur.execute(rule.count_sql())
    row = ctx.cur.fetchone()
    assert row is not None
    count = int(row[0])
    sample: tuple[str, ...] = ()
    if count and ctx.options.sample > 0:
        ctx.cur.execute(rule.sample_sql(ctx.options.sample))
        sample = tuple(str(r[0]) for r in ctx.cur.fetchall())
    return [Outcome(rule.code, rule.table or NO_TABLE, count, sample=sample)]


def _script_query(ctx: CheckContext, rule: Rule) -> str:
    """A query rule's psql-script statement: code, table, count."""
    assert isinstance(rule, CustomQueryRule)
    return (f"SELECT {literal(rule.code)} AS code, {literal(rule.table or NO_TABLE)} AS \"table\", "
            f"count(*) AS count FROM {rule.keys};")


def is_custom(rule: Rule) -> bool:
    return isinstance(rule, CustomRowRule | CustomQueryRule)


def family(rules: Sequence[Rule]) -> Family:
    """Gives the family of the team's query rules: each its own statement, so each a pass of its own (row
    rules need no family: they join their table's pass)."""
    return Family("custom", tuple(rules), separable=True)


def declare(entry: dict[str, Any], source: str) -> Rule:
    """Gives the rule a validated [[custom_rules]] entry declares (see project_file for the validation)."""
    from ..findings import Severity

    code, name, table = entry["code"], entry["name"], str(entry.get("table") or "")
    severity = Severity(entry["severity"])
    hint = entry.get("hint", "")
    common: dict[str, Any] = dict(
        code=code, name=name, section=int(entry["section"]), severity=severity, why=entry.get("why")
        or f"a rule of the team's own, declared in {source}", repair=REPAIR, repair_safety=FixSafety.NONE,
        hint=hint, source=source,
    )
    if "where" in entry:
        where = entry["where"].strip()
        rule = CustomRowRule(table=table, finds=entry.get("finds") or f"{table} rows where {where}",
                             example=f"SELECT t.* FROM {ident(table)} t WHERE {where}", predicate=where,
                             message=entry.get("finds") or name, **common)
        # Every alias it names is bound by its own subqueries once validate_sql has planned it alone: those
        # the pass builder does not see bound (after a comma, say) are declared its own.
        return replace(rule, scoped=tuple(sorted(fragment_aliases(rule))))
    query = query_text(entry["query"])
    return CustomQueryRule(table=table or None, finds=entry.get("finds") or "the rows its query returns",
                           example=query, query=query, message=entry.get("finds") or name,
                           evaluate=_evaluate_query, script=_script_query, **common)


def query_text(text: str) -> str:
    """Gives a rule's query without surrounding space and a trailing ';' (habit from psql, not a second statement)."""
    return text.strip().removesuffix(";").rstrip()


def lexical_problem(text: str) -> str | None:
    """Gives why `text` is not one self-contained SQL expression or statement (None when it is).

    Outside string literals, quoted identifiers and dollar quotes: no `;`, no comment, and no `)` closing
    a parenthesis the text did not open; every parenthesis it opens is closed.
    """
    depth, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            escapes = c == "'" and i > 0 and text[i - 1] in "eE"  # E'…' strings escape with a backslash
            j = i + 1
            while j < n:
                if escapes and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # '' and "" are an escaped quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                return "a quote is not closed"
            i = j + 1
            continue
        tag = _DOLLAR_TAG.match(text, i) if c == "$" else None
        if tag:
            end = text.find(tag.group(0), tag.end())
            if end == -1:
                return "a dollar quote is not closed"
            i = end + len(tag.group(0))
            continue
        if c == ";":
            return "it holds a ';' (one expression or statement only)"
        if text.startswith("--", i) or text.startswith("/*", i):
            return "it holds an SQL comment"
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return "a ')' closes a parenthesis it did not open"
        i += 1
    return "a '(' is not closed" if depth else None


def validate_sql(cur: psycopg.Cursor[Any], schema: Schema, rules: Sequence[Rule]) -> None:
    """Raises UsageError (one line) for the first team rule whose SQL does not parse, or writes.

    Each statement is EXPLAINed (planned, never executed) in a savepoint of the caller's read-only
    snapshot, exactly as the check would run it: a predicate alone on its table (so that it can see
    nothing but `t`), a query wrapped as a subquery (so that a statement that writes cannot parse).
    """
    for rule in rules:
        if isinstance(rule, CustomRowRule):
            if not schema.has(str(rule.table)):
                continue  # the check reports it `skipped`: the table is absent
            statement = f"SELECT 1 FROM {rel(str(rule.table))} t WHERE ({rule.predicate})"
            what = f"the where of {rule.code} ({rule.source})"
        elif isinstance(rule, CustomQueryRule):
            if rule.table and not schema.has(rule.table):
                continue
            _refuse_writes(cur, rule)
            statement = rule.sample_sql(1)
            what = f"the query of {rule.code} ({rule.source})"
        else:
            continue
        try:
            with cur.connection.transaction():
                cur.execute("EXPLAIN " + statement)
        except psycopg.Error as exc:
            if _not_the_rules(exc, cur):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = ("a predicate may reference the row t only (use a subquery for other tables)"
                    if isinstance(rule, CustomRowRule) else "write one SELECT returning the violating rows' keys")
            raise UsageError(f"{what} is not valid SQL: {first}; nothing was run", hint) from None


def _not_the_rules(exc: psycopg.Error, cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether exc is the session's failure, not the rule's: a lost connection, or a standby's replay that
    cancelled the statement (the check reads again in a new snapshot)."""
    return exc.sqlstate is None or exc.sqlstate.startswith("08") or recovery_conflict(exc, cur.connection)


def _refuse_writes(cur: psycopg.Cursor[Any], rule: CustomQueryRule) -> None:
    """Raises UsageError when the query, planned on its own, would write (or lock) rows."""
    try:
        with cur.connection.transaction():
            cur.execute("EXPLAIN (FORMAT JSON) " + rule.query)
            row = cur.fetchone()
    except psycopg.Error as exc:
        if _not_the_rules(exc, cur):
            raise
        return  # it does not parse alone either: the wrapped EXPLAIN says why
    plan = str(row[0]) if row else ""
    for node, does in (("ModifyTable", "writes"), ("LockRows", "locks rows")):
        if f"'Node Type': '{node}'" in plan or f'"Node Type": "{node}"' in plan:
            raise UsageError(f"the query of {rule.code} ({rule.source}) {does}; nothing was run",
                             "a rule's query may only read: write one SELECT returning the violating rows' keys")


# ---------------------------------------------------------------------------- `rules` and `rules CODE`

def listing(rules: Sequence[Rule]) -> str:
    """Gives the catalogue and the team's rules as one table (`mita-integrity rules`)."""
    from .rules import docs

    if not any(is_custom(r) for r in rules):
        return docs.listing()
    lines = [f"{'CODE':<7} {'SEVERITY':<9} {'REPAIR':<7} {'TABLE':<18} FINDS"]
    for rule in rules:
        finds = textwrap.shorten(rule.finds, 70, placeholder="…")
        table = rule.table or ("(query)" if is_custom(rule) else "(per table)")
        lines.append(f"{rule.code:<7} {rule.severity.value:<9} {rule.repair_safety.value:<7} {table:<18} {finds}")
    team = sum(1 for r in rules if is_custom(r))
    lines.append(f"{len(rules)} rules ({team} of the project file). `mita-integrity rules CODE` explains one.")
    return "\n".join(lines)


def rule_json(rule: Rule) -> dict[str, Any]:
    """Gives one rule's documentation as JSON; a team rule also says where it was declared."""
    from .rules import docs

    out = docs.rule_json(rule)
    if isinstance(rule, CustomRowRule | CustomQueryRule):
        out.update(kind="team row predicate" if isinstance(rule, CustomRowRule) else "team query",
                   table=rule.table or NO_TABLE, source=rule.source, hint=rule.hint)
    return out


def explain(rule: Rule) -> str:
    """Gives everything about one rule (`mita-integrity rules CODE`); a team rule's SQL and origin too."""
    from .rules import docs

    text = docs.explain(rule)
    if isinstance(rule, CustomQueryRule):
        if not rule.table:
            text = text.replace(", on every table it applies to", ", on the rows its query returns", 1)
        text += f"\nSQL\n  {rule.query}\n"
    if isinstance(rule, CustomRowRule | CustomQueryRule):
        text += f"\nDeclared in {rule.source}" + (f"; hint: {rule.hint}" if rule.hint else "") + "\n"
    return text


def validate_in_database(db: Any, rules: Sequence[Rule]) -> None:
    """Validates the team rules' SQL in a read-only snapshot of db of its own (for `schedule` at start-up)."""
    if not any(is_custom(r) for r in rules):
        return
    from ..database.connection import connect, transaction
    from .rules.context import load_schema

    with connect(db) as conn, transaction(conn, read_only=True, repeatable_read=True) as cur:
        validate_sql(cur, load_schema(cur), rules)
