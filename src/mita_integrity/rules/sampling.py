"""Counting violations and taking a sample of their primary keys in one statement."""

from __future__ import annotations

from .context import CheckContext, ident


def count_and_sample(ctx: CheckContext, table: str, where: str, joins: str = "") -> tuple[int, tuple[str, ...]]:
    """Gives the number of rows of `table t` matching `where`, and up to --sample of their keys."""
    pk = ctx.schema.primary_keys.get(table, "id")
    ctx.cur.execute(
        f"SELECT count(*), (array_agg(t.{ident(pk)}::text) FILTER (WHERE true))[1:%s] "
        f"FROM {ident(table)} t {joins} WHERE {where}",
        (ctx.options.sample,),
    )
    row = ctx.cur.fetchone()
    assert row is not None
    return int(row[0]), tuple(row[1] or ())
