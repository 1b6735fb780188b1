"""Repairs of single rows: archive then delete them, or archive then set some columns.

Deleting a row that other rows reference would let the foreign key's ON DELETE act unseen (a cascade
removes children, SET NULL changes them) and those rows would be lost to `undo`. So dependents are
handled first, explicitly and archived: CASCADE children are archived and deleted (recursively), SET
NULL children are archived and updated. A parent whose dependents cannot be archived (no single-column
primary key) or would block the delete (NO ACTION/RESTRICT/SET DEFAULT) is left alone and reported.

A repair that sets columns computes the values first, under the catalog's search_path (base.CHOOSING), into a
temporary table of the columns' own types (an INSERT coerces as the UPDATE's SET would), and the UPDATE then
only copies them. It verifies its own effect before its batch commits: a table's own triggers may
overwrite what it set (transactions' updated_at trigger stamps now()), and a row that still violates the
rule afterwards is put back as it was (a savepoint) and reported as needing a person — never archived
and changed again on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from ...check.rules.base import rel
from ...check.rules.quoting import ident
from ...findings import FixSafety
from .base import CHOOSING, EQ, WRITING, BatchOutcome, RepairContext, archive_insert

if TYPE_CHECKING:
    from ...check.rules.base import Rule
    from ...check.rules.context import Constraint

MAX_DEPTH = 4


def dependents(ctx: RepairContext, table: str) -> list[Constraint]:
    """Gives the single-column foreign keys that reference `table`'s primary key."""
    pk = ctx.schema.primary_keys.get(table)
    return [c for c in ctx.schema.constraints
            if c.kind == "f" and c.ref_table == table and len(c.columns) == 1 and pk is not None
            and f"REFERENCES {table}({pk})" in c.definition.replace('"', "").replace("public.", "")]


def _blockers(ctx: RepairContext, table: str, alias: str = "t", depth: int = 0) -> list[str]:
    """Gives NOT EXISTS conditions excluding rows whose dependents the repair could not archive (the dependents
    named with their schema: the candidates are chosen under the catalog's search_path alone)."""
    pk = ctx.pk(table)
    out = []
    for con in dependents(ctx, table):
        child, column = con.table, con.columns[0]
        archivable = child in ctx.schema.primary_keys and depth < MAX_DEPTH
        if con.on_delete in ("c", "n") and archivable:
            if con.on_delete == "c":
                nested = _blockers(ctx, child, f"d{depth}", depth + 1)
                if nested:
                    out.append(f"NOT EXISTS (SELECT 1 FROM {rel(child)} d{depth} WHERE d{depth}.{ident(column)} = "
                               f"{alias}.{ident(pk)} "
                               f"AND NOT ({' AND '.join(nested)}))")
            continue
        out.append(f"NOT EXISTS (SELECT 1 FROM {rel(child)} x{depth} "
                   f"WHERE x{depth}.{ident(column)} = {alias}.{ident(pk)})")
    return out


def _remove_dependents(cur: psycopg.Cursor[Any], ctx: RepairContext, code: str, table: str,
                       ids: list[Any], depth: int = 0) -> BatchOutcome:
    """Archives and deletes (CASCADE) or archives and nulls (SET NULL) the rows referencing `ids`."""
    done = BatchOutcome()
    for con in dependents(ctx, table):
        child, column = con.table, con.columns[0]
        child_pk = ctx.schema.primary_keys.get(child)
        if con.on_delete not in ("c", "n") or child_pk is None:
            continue
        cur.execute(CHOOSING)
        cur.execute(f"SELECT {ident(child_pk)} FROM {rel(child)} WHERE {ident(column)} = ANY(%s) ORDER BY 1 "
                    "FOR UPDATE", (ids,))
        child_ids = [r[0] for r in cur.fetchall()]
        if not child_ids:
            continue
        if con.on_delete == "c":
            done.add(_remove_dependents(cur, ctx, code, child, child_ids, depth + 1))
            done.add(_delete(cur, ctx, code, child, child_pk, child_ids))
        else:
            done.add(_update(cur, ctx, code, child, child_pk, child_ids, f"{ident(column)} = NULL"))
        done.notes.append(f"{len(child_ids)} {child} rows referencing them archived too (ON DELETE)")
    return done


def _delete(cur: psycopg.Cursor[Any], ctx: RepairContext, code: str, table: str, pk: str,
            ids: list[Any]) -> BatchOutcome:
    cur.execute(WRITING)
    cur.execute(delete_sql(ctx, code, table, pk), {"ids": ids})
    return BatchOutcome(changed=cur.rowcount, archived=cur.rowcount)


def _update(cur: psycopg.Cursor[Any], ctx: RepairContext, code: str, table: str, pk: str, ids: list[Any],
            assignments: str, source: str = "") -> BatchOutcome:
    """Sets the columns of rows `ids`: a constant (a referencing column set to NULL), or values computed before
    (`source`, see values_sql)."""
    cur.execute(WRITING)
    cur.execute(update_sql(ctx, code, table, pk, assignments, source), {"ids": ids})
    return BatchOutcome(changed=cur.rowcount, archived=cur.rowcount)


def delete_sql(ctx: RepairContext, code: str, table: str, pk: str) -> str:
    tq, pq = ident(table), ident(pk)
    return (f"WITH gone AS (DELETE FROM {tq} t WHERE t.{pq} {EQ} ANY(%(ids)s) "
            f"RETURNING t.{pq} AS pk_value, pg_catalog.to_jsonb(t) AS before, NULL::jsonb AS after) "
            + archive_insert(ctx, code, table, "delete", "gone", pk))


def update_sql(ctx: RepairContext, code: str, table: str, pk: str, assignments: str, source: str = "") -> str:
    """Gives the UPDATE of rows %(ids)s that archives each row before and after (`source`, a FROM list joined on
    the primary key as `v.pk_value`, holds the values the assignments copy)."""
    # All CTEs read one snapshot: `old` is the row before the UPDATE, RETURNING gives it after (triggers included).
    tq, pq = ident(table), ident(pk)
    joined = f"FROM {source} WHERE t.{pq} {EQ} v.pk_value AND " if source else "WHERE "
    return (f"WITH old AS (SELECT t.{pq} AS pk_value, pg_catalog.to_jsonb(t) AS before FROM {tq} t "
            f"WHERE t.{pq} {EQ} ANY(%(ids)s)), "
            f"changed AS (UPDATE {tq} t SET {assignments} {joined}t.{pq} {EQ} ANY(%(ids)s) "
            f"RETURNING t.{pq} AS pk_value, pg_catalog.to_jsonb(t) AS after), "
            f"pair AS (SELECT c.pk_value, o.before, c.after FROM changed c JOIN old o ON o.pk_value {EQ} c.pk_value) "
            + archive_insert(ctx, code, table, "update", "pair", pk))


VALUES_TABLE = "mita_fix_values"


def split_assignments(assignments: str) -> list[tuple[str, str]]:
    """Gives the (column, expression) pairs of a SET list ("a = 1, b = coalesce(x, y)"): split at the commas and
    the first '=' outside parentheses and quotes."""
    pairs, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(assignments + ","):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and ch == ",":
            column, _, expression = assignments[start:i].partition("=")
            pairs.append((column.strip(), expression.strip()))
            start = i + 1
    return pairs


def values_sql(table: str, pk: str, assignments: str) -> tuple[str, str, str]:
    """Gives the statements computing a row repair's values (under CHOOSING) and the SET list copying them.

    The table has the columns' own types (CREATE ... AS SELECT of the columns themselves, NO DATA): the INSERT
    coerces each expression as the UPDATE's SET would, so the values written are the ones SET would write."""
    pairs = split_assignments(assignments)
    columns = ", ".join(f"t.{ident(c)}" for c, _ in pairs)
    create = (f"CREATE TEMP TABLE {VALUES_TABLE} ON COMMIT DROP AS SELECT t.{ident(pk)} AS pk_value, {columns} "
              f"FROM {rel(table)} t WITH NO DATA")
    fill = (f"INSERT INTO {VALUES_TABLE} (pk_value, {', '.join(ident(c) for c, _ in pairs)}) "
            f"SELECT t.{ident(pk)}, {', '.join(e for _, e in pairs)} FROM {rel(table)} t "
            f"WHERE t.{ident(pk)} = ANY(%(ids)s)")
    copy = ", ".join(f"{ident(c)} = v.{ident(c)}" for c, _ in pairs)
    return create, fill, copy


@dataclass(frozen=True)
class RowRepair:
    """Archive then delete the violating rows (assignments empty), or archive then SET assignments."""

    safety: FixSafety
    assignments: str = ""  # SQL SET list with the row alias t, e.g. "goal_id = NULL"
    guard: str = ""  # rows the repair can mend (e.g. only when the user's own currency is valid)
    leaves: str = ""  # the rows the guard leaves to a person, in words (for the plan)

    @property
    def action(self) -> str:
        action = f"archive, then set {self.assignments}" if self.assignments else "archive, then delete"
        return f"{action}; {self.leaves} need a person" if self.leaves else action

    def _selection(self, ctx: RepairContext, rule: Rule) -> tuple[str, str]:
        extra = [c for c in (ctx.live(rule), self.guard) if c]
        if not self.assignments:
            extra += _blockers(ctx, str(rule.table))
        return rule.selection(" AND ".join(extra))  # type: ignore[attr-defined]

    def _lock_sql(self, ctx: RepairContext, rule: Rule) -> str:
        source, where = self._selection(ctx, rule)
        pk = ctx.pk(str(rule.table))
        return (f"SELECT t.{pk} FROM {source} WHERE t.{pk} = ANY(%(ids)s) AND {where} "
                "ORDER BY 1 FOR UPDATE OF t SKIP LOCKED")

    def candidates_sql(self, ctx: RepairContext, rule: Rule) -> str:
        source, where = self._selection(ctx, rule)
        return f"SELECT t.{ctx.pk(str(rule.table))} FROM {source} WHERE {where} ORDER BY 1"

    def batch_sql(self, ctx: RepairContext, rule: Rule) -> list[str]:
        table = str(rule.table)
        pk = ctx.pk(table)
        if not self.assignments:
            return [CHOOSING, self._lock_sql(ctx, rule), WRITING,
                    delete_sql(ctx, rule.code, table, pk).replace("%(ids)s", "%(locked)s")]
        create, fill, copy = values_sql(table, pk, self.assignments)
        change = update_sql(ctx, rule.code, table, pk, copy, f"{VALUES_TABLE} v")
        return [CHOOSING, self._lock_sql(ctx, rule), create, fill.replace("%(ids)s", "%(locked)s"), WRITING,
                change.replace("%(ids)s", "%(locked)s")]

    def apply(self, cur: psycopg.Cursor[Any], ctx: RepairContext, rule: Rule,
              units: Sequence[tuple[Any, ...]]) -> BatchOutcome:
        table = str(rule.table)
        cur.execute(CHOOSING)
        cur.execute(self._lock_sql(ctx, rule), {"ids": [u[0] for u in units]})
        locked = [r[0] for r in cur.fetchall()]
        done = BatchOutcome(skipped=len(units) - len(locked))
        if not locked:
            return done
        if self.assignments:
            done.add(self._mend(cur, ctx, rule, locked))
        else:
            done.add(_remove_dependents(cur, ctx, rule.code, table, locked))
            done.add(_delete(cur, ctx, rule.code, table, ctx.pk(table), locked))
        return done

    def _mend(self, cur: psycopg.Cursor[Any], ctx: RepairContext, rule: Rule, ids: list[Any]) -> BatchOutcome:
        """Sets the columns of the locked rows; rows the change did not mend are put back and reported."""
        table = str(rule.table)
        pk = ctx.pk(table)
        source, where = self._selection(ctx, rule)
        still = f"SELECT t.{pk} FROM {source} WHERE t.{pk} = ANY(%(ids)s) AND {where}"
        create, fill, copy = values_sql(table, pk, self.assignments)
        cur.execute(create)  # under CHOOSING, as the lock before
        cur.execute(fill, {"ids": ids})
        stuck: list[Any] = []
        while ids:
            with cur.connection.transaction() as savepoint:
                done = _update(cur, ctx, rule.code, table, pk, ids, copy, f"{VALUES_TABLE} v")
                cur.execute(CHOOSING)
                cur.execute(still, {"ids": ids})
                stuck_now = [r[0] for r in cur.fetchall()]
                if not stuck_now:
                    break
                stuck += stuck_now
                put_back = set(stuck)
                ids = [i for i in ids if i not in put_back]  # the others again, without the rows put back
                raise psycopg.Rollback(savepoint)
        else:
            done = BatchOutcome()
        cur.execute(f"DROP TABLE {VALUES_TABLE}")
        if stuck:
            done.notes.append(f"rows this repair does not mend (e.g. {stuck[0]}: the row still violates {rule.code} "
                              "after the change, which was undone) need a person")
        return done
