"""What a rule sees while it runs: the cursor of the snapshot, the live schema, the options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from ..findings import Status
from .base import Rule, ident

CREATION_COLUMNS = ("created_at", "calculated_at", "timestamp", "started_at", "completed_at")


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


@dataclass(frozen=True)
class Schema:
    """The live schema of `public`: tables, their columns, constraints, indexes and triggers."""

    columns: dict[str, dict[str, tuple[str, bool]]]  # table -> column -> (type, not null)
    constraints: tuple[Constraint, ...]
    primary_keys: dict[str, str]  # table -> its single-column primary key

    def has(self, name: str) -> bool:
        """Tells whether 'table' or 'table.column' exists."""
        table, _, column = name.partition(".")
        if table not in self.columns:
            return False
        return not column or column in self.columns[table]

    def missing(self, rule: Rule) -> str | None:
        """Gives the first table/column the rule needs that is absent, or None."""
        return next((n for n in rule.needs() if not self.has(n)), None)

    def not_null(self, table: str, column: str) -> bool:
        return self.columns.get(table, {}).get(column, ("", False))[1]

    def validated_fk(self, table: str, column: str, parent: str) -> Constraint | None:
        """Gives a validated FK from table.column to parent, if there is one."""
        for con in self.constraints:
            if (con.kind == "f" and con.table == table and con.columns == (column,) and con.ref_table == parent
                    and con.validated):
                return con
        return None

    def validated_check(self, names: tuple[str, ...]) -> Constraint | None:
        """Gives the first validated CHECK constraint with one of these names."""
        for con in self.constraints:
            if con.kind == "c" and con.name in names and con.validated:
                return con
        return None

    def creation_column(self, table: str) -> str | None:
        cols = self.columns.get(table, {})
        return next((c for c in CREATION_COLUMNS if c in cols and "time" in cols[c][0]), None)


def load_schema(cur: psycopg.Cursor[Any]) -> Schema:
    """Gives the live schema of `public`, read from the system catalogs in three small queries."""
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
                  rc.relname, con.convalidated, con.confdeltype, pg_get_constraintdef(con.oid)
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class rc ON rc.oid = con.confrelid
            WHERE n.nspname = 'public' ORDER BY c.relname, con.conname"""
    )
    constraints = tuple(
        Constraint(name, kind, table, tuple(cols or ()), ref, validated, str(ondel or ""), definition)
        for name, kind, table, cols, ref, validated, ondel, definition in cur.fetchall()
    )
    primary_keys = {c.table: c.columns[0] for c in constraints if c.kind == "p" and len(c.columns) == 1}
    return Schema(columns, constraints, primary_keys)


@dataclass(frozen=True)
class CheckOptions:
    """The knobs of one check run."""

    sample: int = 10
    since_seconds: int | None = None  # --since: only rows created in this window
    budget_days: int = 30
    day_boundary: str = "utc"  # or "user-timezone"
    physical: bool = False


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
    for table in metadata.sorted_tables:
        columns[table.name] = {
            c.name: (c.type.compile(dialect=dialect).lower(), not c.nullable)
            for c in table.columns
        }
        pk = [c.name for c in table.primary_key.columns]
        if len(pk) == 1:
            primary_keys[table.name] = pk[0]
        for fk in table.foreign_key_constraints:
            constraints.append(Constraint(
                str(fk.name), "f", table.name, tuple(c.name for c in fk.columns), fk.referred_table.name, True,
                {"CASCADE": "c", "SET NULL": "n", "RESTRICT": "r"}.get(str(fk.ondelete or "").upper(), "a"), "",
            ))
    return Schema(columns, tuple(constraints), primary_keys)
