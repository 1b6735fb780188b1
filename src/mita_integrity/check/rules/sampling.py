"""Counting violations and taking a sample of their primary keys in one statement."""

from __future__ import annotations

from .base import rel
from .context import CheckContext


def count_and_sample(ctx: CheckContext, table: str, where: str, joins: str = "") -> tuple[int, tuple[str, ...]]:
    """Gives the number of rows of `table t` matching `where`, and up to --sample of their keys."""
    source = f"{rel(table)} t {joins}"
    ctx.cur.execute(f"SELECT count(*) FROM {source} WHERE {where}")
    row = ctx.cur.fetchone()
    assert row is not None
    sample: tuple[str, ...] = ()
    if row[0] and ctx.options.sample > 0:
        # Only for a failing rule, and bounded: memory never grows with the number of violations.
        ctx.cur.execute(f"SELECT {ctx.schema.row_key(table)} FROM {source} WHERE {where} LIMIT %s",
                        (ctx.options.sample,))
        sample = tuple(r[0] for r in ctx.cur.fetchall())
    return int(row[0]), sample
