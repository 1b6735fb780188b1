"""What a repair is, and what every repair shares: the archive statement and the batch outcome.

A repair turns the violations of one rule into rows that pass it. It works on *units* — primary keys of
rows, or (user, day, category) keys of the calendar — that a read-only query lists (`candidates_sql`);
`apply` repairs one batch of them inside the caller's transaction: lock (SKIP LOCKED), archive the
before-image, change. Each batch re-tests the violation under the lock, so a stale candidate (fixed
meanwhile by someone else) is left alone and re-running finds only what is left.

What a batch chooses and computes (the lock and its re-test, the merged and recomputed amounts, the values a
row repair sets) runs under the catalog's search_path alone (CHOOSING), as the check's statements: a function
or operator of public that matches an argument's type better than the built-in one cannot decide which rows
are taken or what is written. Only the writes themselves run under the session's `public` (WRITING): the
application's trigger functions, which they fire, may name its tables unqualified. A write copies values computed
before and names the catalog's functions and key equality itself (EQ), so nothing of public can match it better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...check.rules.base import literal
from ...database.connection import CATALOG_SEARCH_PATH, SESSION_SETTINGS
from ...findings import FixSafety

if TYPE_CHECKING:
    import uuid

    import psycopg

    from ...check.rules.base import Rule
    from ...check.rules.context import CheckOptions, Schema

ARCHIVE_COLUMNS = "run_id, rule_code, table_name, action, pk, before, after"
CHOOSING = f"SET LOCAL search_path = {CATALOG_SEARCH_PATH}"
WRITING = f"SET LOCAL search_path = {dict(SESSION_SETTINGS)['search_path']}"
# The equality of keys in a write: the catalog's own, whatever public holds (public.=(varchar, varchar) would be
# an exact match for a varchar key, where pg_catalog has only text = text). Every function a write calls is named
# pg_catalog.… for the same reason (public.to_jsonb(public.goals) beats to_jsonb(anyelement)); what remains is
# a comparison of built-in types that pg_catalog matches exactly (bigint = integer, numeric IS DISTINCT FROM
# numeric), and with an exact match the catalog, searched first, wins.
EQ = "OPERATOR(pg_catalog.=)"


@dataclass(frozen=True)
class RepairContext:
    """What a repair needs to know: the live schema, the check options (day boundary), the run."""

    schema: Schema
    options: CheckOptions
    run_id: uuid.UUID | None = None

    def live(self, rule: Rule) -> str:
        """Gives the extra condition restricting a live-only rule to rows not soft-deleted ('' if none)."""
        if rule.live_only and rule.table and self.schema.has(f"{rule.table}.deleted_at"):
            return "t.deleted_at IS NULL"
        return ""

    def pk(self, table: str) -> str:
        return self.schema.primary_keys[table]


@dataclass
class BatchOutcome:
    """What one batch did: rows changed (incl. removed/inserted), rows archived, units left alone."""

    changed: int = 0
    archived: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: BatchOutcome) -> None:
        self.changed += other.changed
        self.archived += other.archived
        self.skipped += other.skipped
        self.notes.extend(n for n in other.notes if n not in self.notes)


class Repair(Protocol):
    """The repair of one rule's violations."""

    @property
    def safety(self) -> FixSafety: ...

    @property
    def action(self) -> str:
        """One line for the plan, e.g. "archive, then delete"."""

    def candidates_sql(self, ctx: RepairContext, rule: Rule) -> str:
        """A read-only query listing the units to repair, in a stable order (the lock order)."""

    def batch_sql(self, ctx: RepairContext, rule: Rule) -> list[str]:
        """The statements one batch runs (shown by the dry run, exactly as executed)."""

    def apply(self, cur: psycopg.Cursor[Any], ctx: RepairContext, rule: Rule,
              units: Sequence[tuple[Any, ...]]) -> BatchOutcome:
        """Repairs one batch of units in the cursor's transaction; gives what it did."""


def archive_insert(ctx: RepairContext, code: str, table: str, action: str, source: str, pk_column: str) -> str:
    """Gives an INSERT of archive rows from `source` (a CTE with columns pk_value, before, after)."""
    run = f"'{ctx.run_id or '<run id>'}'::uuid"  # the dry run shows where the run's id goes
    return (f"INSERT INTO integrity.archive ({ARCHIVE_COLUMNS}) "
            f"SELECT {run}, {literal(code)}, {literal(table)}, {literal(action)}, "
            f"pg_catalog.jsonb_build_object({literal(pk_column)}::text, s.pk_value), "
            f"s.before, s.after FROM {source} s")


def key_units(units: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Gives the parameters of a batch of (user_id, day, category) keys, as three arrays."""
    return {"users": [u[0] for u in units], "days": [u[1] for u in units], "cats": [u[2] for u in units]}


KEYS_SQL = ("(SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) "
            "AS k0(user_id, day, category))")
