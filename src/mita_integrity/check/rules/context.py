"""What a rule sees while it runs: the cursor of the snapshot, the live schema, the options."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from ...database.connection import CATALOG_SEARCH_PATH
from ...findings import PassTiming, Status
from .quoting import ident


@contextmanager
def planner_settings(cur: Any, settings: tuple[tuple[str, str], ...]) -> Iterator[None]:
    """Runs the block with these settings (constants), local to the transaction, and puts the ones before back
    (a failed block leaves the transaction to be rolled back, which puts them back). No settings: no statement."""
    if not settings:
        yield
        return
    cur.execute("SELECT " + ", ".join(f"current_setting('{name}'), set_config('{name}', '{value}', true)"
                                      for name, value in settings))
    found = cur.fetchone()
    assert found is not None
    yield
    cur.execute("SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name, _ in settings), found[::2])


class NeedsNames(Protocol):
    """What `Schema.missing` reads of a rule: the tables and columns it needs."""

    def needs(self) -> tuple[str, ...]: ...


CREATION_COLUMNS = ("created_at", "calculated_at", "timestamp", "started_at", "completed_at")


def normalised_check(definition: str) -> str:
    """Gives a CHECK definition without its casts, parentheses, spaces and case, for comparing definitions.

    pg_get_constraintdef renders `amount >= 0` as `CHECK ((amount >= (0)::numeric))`; both normalise to
    `amount>=0`, while `saved_amount <= target_amount + 1000000` stays different.
    """
    # Only casts that keep every value as it is: `(saved_amount)::integer <= (target_amount)::integer` lets
    # 10.4 over a target of 10 through, so it must not read as `saved_amount <= target_amount`.
    text = re.sub(r"::(numeric|text|character varying)(\[\])?(?![\w(])", "", definition.lower())
    text = re.sub(r"\bnot valid\b", "", text)
    return re.sub(r"[()\s]", "", text).removeprefix("check")


@dataclass(frozen=True)
class Constraint:
    """A constraint as the catalog has it."""

    name: str
    kind: str  # 'f' foreign key, 'c' check, 'u' unique, 'p' primary key
    table: str
    columns: tuple[str, ...]
    ref_table: str | None
    validated: bool
    on_delete: str  # a NO ACTION, r RESTRICT, c CASCADE, n SET NULL, d SET DEFAULT
    definition: str
    ref_schema: str | None = None  # the referenced table's schema (a foreign key to legacy.users is not ours)
    ref_columns: tuple[str, ...] = ()
    enforced: bool = True  # its triggers are enabled (DISABLE TRIGGER ALL is not); a key: its table has no children


@dataclass(frozen=True)
class Schema:
    """The live schema of `public`: tables, their columns, constraints, indexes and triggers."""

    columns: dict[str, dict[str, tuple[str, bool]]]  # table -> column -> (type, not null)
    constraints: tuple[Constraint, ...]
    primary_keys: dict[str, str]  # table -> its single-column primary key
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> its primary key, composite too
    # Partitions and inheritance children: a scan of their parent reads their rows already, so a rule that
    # goes through every table of the schema skips them (each row is counted once).
    children: frozenset[str] = frozenset()
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # child -> its parents in public

    def read_with_parent(self, table: str, column: str) -> bool:
        """Tells whether a scan of a parent of `table` reads `table`'s `column` (so `table` is not read again).

        A child's own column that no parent has (`user_audit (user_id) INHERITS (audit_base)`) is read only
        through the child.
        """
        return any(column in self.columns.get(parent, {}) for parent in self.parents.get(table, ()))

    def has(self, name: str) -> bool:
        """Tells whether 'table' or 'table.column' exists (a table whose own name holds a dot, too)."""
        if name in self.columns:
            return True
        table, _, column = name.rpartition(".")
        return bool(table) and table in self.columns and column in self.columns[table]

    def missing(self, rule: NeedsNames) -> str | None:
        """Gives the first table/column the rule needs that is absent, or None."""
        return next((n for n in rule.needs() if not self.has(n)), None)

    def missing_kind(self, name: str) -> str:
        """Tells whether an absent `name` is a table or a column of a table that exists."""
        table = name.rpartition(".")[0]
        return "column" if table and table in self.columns else "table"

    def row_key(self, table: str, alias: str = "t") -> str:
        """Gives SQL naming one row of `table` as text: its primary key, a composite one as a row, else ctid."""
        key = self.keys.get(table) or ((self.primary_keys[table],) if table in self.primary_keys else ())
        if len(key) == 1:
            return f"{alias}.{ident(key[0])}::text"
        if key:
            return "ROW(" + ", ".join(f"{alias}.{ident(c)}" for c in key) + ")::text"
        return f"{alias}.ctid::text"

    def not_null(self, table: str, column: str) -> bool:
        return self.columns.get(table, {}).get(column, ("", False))[1]

    def validated_fk(self, table: str, column: str, parent: str) -> Constraint | None:
        """Gives a foreign key that rules out orphans of table.column now: validated, to public.parent(id), enforced.

        Decided by what the constraint is, never by its name: a key to another schema's `users`, to another
        column, NOT VALID, or whose triggers are disabled lets orphans in.
        """
        for con in self.constraints:
            if (con.kind == "f" and con.table == table and con.columns == (column,) and con.ref_table == parent
                    and con.ref_schema in (None, "public") and con.ref_columns in ((), ("id",))
                    and con.validated and con.enforced):
                return con
        return None

    def validated_check(self, table: str, definitions: tuple[str, ...],
                        not_null: tuple[str, ...] = ()) -> Constraint | None:
        """Gives a validated CHECK on `table` whose definition is one of `definitions` (compared normalised).

        A CHECK passes a row whose expression is NULL, so where the rule counts such a row the columns in
        `not_null` must be NOT NULL as well for the CHECK to rule the violations out.
        """
        if any(not self.not_null(table, column) for column in not_null):
            return None
        wanted = {normalised_check(d) for d in definitions}
        for con in self.constraints:
            if con.kind == "c" and con.table == table and con.validated and normalised_check(con.definition) in wanted:
                return con
        return None

    def creation_column(self, table: str) -> str | None:
        cols = self.columns.get(table, {})
        return next((c for c in CREATION_COLUMNS if c in cols and "time" in cols[c][0]), None)


def load_schema(cur: psycopg.Cursor[Any]) -> Schema:
    """Gives the live schema of `public`, read from the system catalogs in three small queries.

    Read under the catalog's search_path alone: pg_get_constraintdef names an operator or function of public
    plainly where public is on the path, and a CHECK bound to `public.>=(numeric, integer)` would read as 0024's
    `amount >= 0` (and guarantee AMT003); under pg_catalog alone it reads `OPERATOR(public.>=)`. Set for the
    caller's transaction only (a pooled server connection never keeps it) and put back.
    """
    cur.execute("SELECT current_setting('search_path')")
    row = cur.fetchone()
    cur.execute("SELECT set_config('search_path', %s, true)", (CATALOG_SEARCH_PATH,))
    try:
        return _read_schema(cur)
    finally:
        if cur.connection.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            cur.execute("SELECT set_config('search_path', %s, true)", (row[0] if row else "public",))


def _read_schema(cur: psycopg.Cursor[Any]) -> Schema:
    cur.execute(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname, a.attnum"""
    )
    columns: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, typ, notnull in cur.fetchall():
        columns.setdefault(table, {})[column] = (typ, notnull)
    cur.execute(
        """SELECT con.conname, con.contype, c.relname,
                  ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
                  rc.relname, con.convalidated, con.confdeltype, pg_get_constraintdef(con.oid), rn.nspname,
                  ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i),
                  NOT EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgconstraint = con.oid
                                 AND tg.tgenabled NOT IN ('O', 'A'))
                  -- A key on a table with children does not speak for their rows: an inheritance child has no
                  -- copy of a foreign key or unique key, a partition's copy may have its triggers disabled.
                  AND (con.contype NOT IN ('f', 'u') OR NOT EXISTS (
                       SELECT 1 FROM pg_inherits i WHERE i.inhparent = con.conrelid))
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class rc ON rc.oid = con.confrelid
             LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE n.nspname = 'public' ORDER BY c.relname, con.conname"""
    )
    constraints = tuple(
        Constraint(name, kind, table, tuple(cols or ()), ref, validated, str(ondel or ""), definition, ref_schema,
                   tuple(ref_cols or ()), bool(enforced))
        for name, kind, table, cols, ref, validated, ondel, definition, ref_schema, ref_cols, enforced
        in cur.fetchall()
    )
    primary_keys = {c.table: c.columns[0] for c in constraints if c.kind == "p" and len(c.columns) == 1}
    keys = {c.table: c.columns for c in constraints if c.kind == "p"}
    cur.execute(
        """SELECT c.relname, pc.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
            WHERE n.nspname = 'public' AND pn.nspname = 'public' AND c.relkind IN ('r', 'p')"""
    )
    parents: dict[str, tuple[str, ...]] = {}
    for child, parent in cur.fetchall():
        parents[child] = (*parents.get(child, ()), parent)
    return Schema(columns, constraints, primary_keys, keys, frozenset(parents), parents)


@dataclass(frozen=True)
class CheckOptions:
    """The knobs of one check run."""

    sample: int = 10
    since_seconds: int | None = None  # --since: only rows created in this window
    budget_days: int = 30
    day_boundary: str = "utc"  # or "user-timezone"
    physical: bool = False
    no_guarantees: bool = False  # --no-guarantees: scan every rule, whatever constraint claims to rule it out


class Scoped(Protocol):
    """Anything that knows the live schema and the run's options (a check's or a repair's context)."""

    @property
    def schema(self) -> Schema: ...

    @property
    def options(self) -> CheckOptions: ...


@dataclass
class CheckContext:
    """A rule's view of the run: the snapshot's cursor, the schema and the options."""

    cur: psycopg.Cursor[Any]
    schema: Schema
    options: CheckOptions = field(default_factory=CheckOptions)
    passes: list[PassTiming] = field(default_factory=list)  # what each pass read and how long it took
    connection: int = 1  # which of the check's connections this context's cursor belongs to
    # check --record keeping a base (check/incremental/): a rule's evaluation leaves here the keys of its
    # violating groups (BUD001, BUD002, DUP003), read by the same statement; None: not asked for
    kept: dict[str, list[str]] | None = None
    serial_plans: bool = False  # the engine's passes run serial plans (two connections share the cores)

    def since_filter(self, table: str, alias: str = "t") -> str | None:
        """Gives the SQL restricting rows to --since (None when no window was asked for)."""
        if self.options.since_seconds is None:
            return None
        column = self.schema.creation_column(table)
        if column is None:
            return "false"
        return f'{alias}.{ident(column)} >= now() - make_interval(secs => {int(self.options.since_seconds)})'


@dataclass(frozen=True)
class Outcome:
    """What evaluating a rule found on one table; the engine turns it into a Result."""

    code: str
    table: str
    count: int = 0
    groups: int | None = None
    sample: tuple[str, ...] = ()
    status: Status | None = None  # None: fail when count > 0, else pass
    reason: str | None = None
    message: str | None = None
    column: str | None = None


def schema_from_metadata(metadata: Any) -> Schema:
    """Gives the Schema the SQLAlchemy models describe (for generating SQL without a database)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    columns: dict[str, dict[str, tuple[str, bool]]] = {}
    constraints: list[Constraint] = []
    primary_keys: dict[str, str] = {}
    keys: dict[str, tuple[str, ...]] = {}
    for table in metadata.sorted_tables:
        columns[table.name] = {
            c.name: (c.type.compile(dialect=dialect).lower(), not c.nullable)
            for c in table.columns
        }
        pk = [c.name for c in table.primary_key.columns]
        keys[table.name] = tuple(pk)
        if len(pk) == 1:
            primary_keys[table.name] = pk[0]
        for fk in table.foreign_key_constraints:
            constraints.append(Constraint(
                str(fk.name), "f", table.name, tuple(c.name for c in fk.columns), fk.referred_table.name, True,
                {"CASCADE": "c", "SET NULL": "n", "RESTRICT": "r"}.get(str(fk.ondelete or "").upper(), "a"), "",
            ))
    return Schema(columns, tuple(constraints), primary_keys, keys)
