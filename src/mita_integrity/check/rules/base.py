"""What a rule is: its code, documentation and the SQL that finds its violations, declared once.

Three shapes cover the catalogue:
- RowRule: a predicate over the rows of one table (optionally through a LEFT JOIN to a parent, which is
  how orphans are found). The engine evaluates every row rule of a table in ONE scan with
  `count(*) FILTER (WHERE …)`; the psql script asks each one alone.
- QueryRule: a rule whose SQL is its own (duplicates, budget, varchar user ids…). Rules that share a
  grouping are evaluated together by their family's `evaluate` function.
- SchemaRule: a question to the system catalogs (constraints, triggers, indexes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...findings import FixSafety, Severity
from .quoting import ident

SCHEMA = "public"


def rel(name: str) -> str:
    """Gives a relation of ours, schema-qualified: a table of the same name earlier on search_path is not read."""
    return f"{SCHEMA}.{ident(name)}"


def literal(text: str) -> str:
    """Quotes a string from the catalog or the configuration as an SQL literal."""
    return "'" + text.replace("'", "''") + "'"

if TYPE_CHECKING:
    from .context import CheckContext, Outcome, Schema


@dataclass(frozen=True)
class Join:
    """A LEFT JOIN that a row predicate looks through; `alias.key IS NULL` in the predicate is an anti-join.

    The joined side is a table of ours or a constant list (VALUES …): a hash join against it is far cheaper
    than testing each row against a long IN list.
    """

    alias: str  # unique in the catalogue (the rule's code in it): a combined pass can never mistake it
    table: str  # a table name, or a parenthesised VALUES list
    on: str  # SQL with the row alias t and the join alias, e.g. "ref001_p.id = t.user_id"
    key: str = "id"

    @property
    def anti(self) -> str:
        return f"{self.alias}.{self.key} IS NULL"

    @property
    def source(self) -> str:
        """Gives the joined relation, schema-qualified (a VALUES list as it is)."""
        return self.table if self.table.startswith("(") else rel(self.table)

    @property
    def sql(self) -> str:
        return f"LEFT JOIN {self.source} {self.alias} ON {self.on}"


@dataclass(frozen=True)
class CheckSpec:
    """A CHECK constraint that rules a rule's violations out, known by its definition (the name is for docs).

    `definition` is compared with pg_get_constraintdef's text, casts and parentheses aside; `not_null`
    names columns that must also be NOT NULL (a CHECK passes a row whose expression is NULL, and the rule
    may count that row).
    """

    name: str
    definition: str
    not_null: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fix:
    """How a rule's violations are mended, declared with the rule; repairs/ holds the implementations.

    `after` names the rules whose repair must run first (an orphan is removed before it is mended or summed;
    dates and duplicates are merged before spent_amount is recomputed). repairs.catalogue builds the Repair
    for each kind of Fix and orders the repairs from these declarations.
    """

    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowFix(Fix):
    """Archive, then delete the violating rows (no assignments), or archive, then SET the assignments."""

    assignments: str = ""  # SQL SET list with the row alias t, e.g. "goal_id = NULL"
    guard: str = ""  # rows the repair can mend (e.g. only when the user's own currency is valid)
    leaves: str = ""  # the rows the guard leaves to a person, in words (shown in the plan)


@dataclass(frozen=True)
class MergeFix(Fix):
    """Archive, then merge the plan rows of a (user, day, category) into one."""

    needs: str = "true"  # the HAVING condition that makes a key need the merge


@dataclass(frozen=True)
class RecomputeFix(Fix):
    """Archive, then set spent_amount to the sum of the day's live transactions (adding a missing plan row)."""


Evaluate = Callable[["CheckContext", "Rule"], "list[Outcome]"]
Script = Callable[["CheckContext", "Rule"], str]


@dataclass(frozen=True)
class Rule:
    """The declaration every rule shares: identity, documentation, what it needs, its repair."""

    code: str
    name: str
    section: int
    severity: Severity
    finds: str
    why: str
    example: str
    repair: str
    repair_safety: FixSafety
    table: str | None  # None: the rule finds its tables in the live catalog (one result per table)
    column: str | None = None
    requires: tuple[str, ...] = ()  # "table" or "table.column" that must exist, besides table/column
    live_only: bool = False  # only rows with deleted_at IS NULL (where the table has that column)
    message: str = ""  # the one-line finding, e.g. "transaction has no user"
    hint: str = ""  # one line: what to do
    not_null_guarantees: bool = False  # a NOT NULL on `column` rules the violations out
    guaranteed_by_check: tuple[CheckSpec, ...] = ()  # validated CHECKs (by definition) on `table` that rule it out
    physical: bool = False  # runs only with --physical
    unit: str = "row"  # what its count counts (BUD001 counts keys, schema rules count objects)
    fix: Fix | None = None  # its repair; None where a person must decide (repair_safety says the same)
    evaluate: Evaluate | None = None  # a QueryRule's own evaluation (row rules are counted by the engine)
    script: Script | None = None  # its psql-script statement; row rules have one of their own (script_sql)

    def script_sql(self, ctx: CheckContext) -> str:
        """Gives the psql-script statement printing `code | table | count` for this rule."""
        assert self.script is not None, f"{self.code} has no psql form"
        return self.script(ctx, self)

    @property
    def fix_available(self) -> bool:
        return self.repair_safety is not FixSafety.NONE

    def needs(self) -> tuple[str, ...]:
        """Gives every table and table.column this rule needs to exist."""
        out: list[str] = []
        if self.table:
            out.append(self.table)
            if self.column:
                out.append(f"{self.table}.{self.column}")
        out.extend(self.requires)
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class RowRule(Rule):
    """A predicate over one table's rows (alias t), perhaps through joins; counted in one scan per table."""

    predicate: str = "false"
    joins: tuple[Join, ...] = ()
    fk: tuple[str, str] | None = None  # (column, parent table): a validated FK on it guarantees the rule
    # Aliases the predicate binds itself, inside its own subqueries (a team rule's: validated by planning the
    # predicate alone on its table, where no other rule's join exists); SQL scoping keeps them its own.
    scoped: tuple[str, ...] = ()

    def selection(self, where_extra: str = "") -> tuple[str, str]:
        """Gives (FROM clause, WHERE condition) selecting the violating rows as alias t, anti-joins as NOT EXISTS.

        Used alone by the psql script and the repairs (which add `FOR UPDATE OF t`).
        """
        predicate, needed = self.predicate, []
        for join in self.joins:
            # alias.key IS NULL through a LEFT JOIN is an anti-join: say it as NOT EXISTS.
            if f"{join.alias}." in predicate.replace(join.anti, ""):
                needed.append(join)
            predicate = predicate.replace(
                join.anti, f"NOT EXISTS (SELECT 1 FROM {join.source} {join.alias} WHERE {join.on})"
            )
        joins = "".join(f" {j.sql}" for j in needed)
        extra = f" AND {where_extra}" if where_extra else ""
        return f"{rel(str(self.table))} t{joins}", f"({predicate}){extra}"

    def standalone_sql(self, where_extra: str = "") -> str:
        """Gives a self-contained query counting the violations (NOT EXISTS for orphans), for psql."""
        source, where = self.selection(where_extra)
        return f"SELECT count(*) FROM {source} WHERE {where}"

    def script_sql(self, ctx: CheckContext) -> str:
        if self.script is not None or not self.table:
            return super().script_sql(ctx)
        live = "t.deleted_at IS NULL" if self.live_only and ctx.schema.has(f"{self.table}.deleted_at") else ""
        return self.standalone_sql(live).replace(
            "SELECT count(*)", f"SELECT {literal(self.code)} AS code, {literal(self.table)} AS \"table\", "
            "count(*) AS count", 1) + ";"


@dataclass(frozen=True)
class QueryRule(Rule):
    """A rule evaluated by its family's own SQL (see that module's evaluate function)."""

    per_table: bool = False


@dataclass(frozen=True)
class SchemaRule(Rule):
    """A rule about the schema itself, answered from the system catalogs.

    `sql` yields (table, count, sample text[]): one row per table the rule looked at. The engine runs it
    inside the snapshot and the psql script prints the same statement's first two columns.
    """

    sql: str = ""

    def script_sql(self, ctx: CheckContext) -> str:
        if self.script is not None:  # a statement that needs more than itself (SCH009: the version tables)
            return super().script_sql(ctx)
        return (f"SELECT {literal(self.code)} AS code, q.tbl AS \"table\", q.count, "
                f"array_to_string(q.sample, ', ') AS detail\n  FROM ({self.sql}) AS q(tbl, count, sample);")


USER_TABLES = """FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = {column} AND NOT a.attisdropped
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'users' AND {type_test}
   AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                    JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                    JOIN pg_attribute pa ON pa.attrelid = pc.oid AND pa.attname = a.attname AND NOT pa.attisdropped
                   WHERE i.inhrelid = c.oid AND pn.nspname = 'public' AND pc.relkind IN ('r', 'p'))
 ORDER BY c.relname"""


def per_table_script(code: str, where: str, column: str, type_test: str) -> str:
    """Gives a psql \\gexec query running `where` on every table of the live catalog with that column.

    A partition or inheritance child is left out where a parent in public has the column: that parent's scan
    reads its rows (as in check, Schema.read_with_parent). A child whose column is its own, or whose parent is
    in another schema, is read itself.
    """
    assert "%" not in where and "$q$" not in where
    select = f"SELECT {literal(code)} AS code, %L AS \"table\", count(*) AS count FROM public.%I t WHERE {where}"
    tables = USER_TABLES.format(column=literal(column), type_test=type_test)
    return f"SELECT format($q${select}$q$, c.relname, c.relname)\n  {tables} \\gexec"


Evaluator = Callable[["CheckContext", "tuple[Rule, ...]"], "list[Outcome]"]


def each_rule(ctx: CheckContext, rules: tuple[Rule, ...]) -> list[Outcome]:
    """The evaluator of a family whose rules share no statement: each rule evaluates itself."""
    out: list[Outcome] = []
    for rule in rules:
        assert rule.evaluate is not None, f"{rule.code} declares no evaluation"
        out.extend(rule.evaluate(ctx, rule))
    return out
Expander = Callable[["Schema"], "tuple[Rule, ...]"]
Splitter = Callable[["CheckContext", "tuple[Rule, ...]", int], "list[Any]"]
PartEvaluator = Callable[["CheckContext", "tuple[Rule, ...]", Any], "list[Outcome]"]


@dataclass(frozen=True)
class Family:
    """A module's rules, how to evaluate its QueryRules/SchemaRules, and how to expand per-table RowRules.

    RowRules need no evaluator (the engine scans their tables). A RowRule declared with table=None is a
    template: `expand` gives one concrete rule per table of the live schema.
    """

    name: str
    rules: tuple[Rule, ...]
    evaluate: Evaluator | None = None
    expand: Expander | None = None
    separable: bool = False  # its rules share no statement: each may run as a pass of its own
    apart: tuple[str, ...] = ()  # codes that share no statement with the others: each runs as a pass of its own
    # Codes of other families it evaluates with its own rules when both are chosen (its statement answers them
    # too): the engine moves them into this family's pass; alone they run in their own family's pass.
    borrows: tuple[str, ...] = ()
    # A family whose shared pass can be split into parts (ranges of a key) run on the check's connections at
    # once: `split` gives the parts (none when it cannot tell), `evaluate_part` evaluates one; the engine adds
    # the parts' counts and merges their samples (by id for the codes in sample_by_id, else in part order).
    split: Splitter | None = None
    evaluate_part: PartEvaluator | None = None
    sample_by_id: tuple[str, ...] = ()
