"""How the package's own statements run: in a savepoint each (a failure costs a rule, not the snapshot), timed
as passes of the report, with lists written as typed literals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.sql

from ...findings import PassTiming
from .. import engine
from ..rules.base import Rule
from ..rules.context import CheckContext


def _timing(ctx: CheckContext, name: str, codes: tuple[str, ...], tables: tuple[str, ...], started: float) -> None:
    ctx.passes.append(PassTiming(name, codes, tables, int((time.perf_counter() - started) * 1000), ctx.connection))


def _array(ctx: CheckContext, values: Sequence[Any], typ: str) -> str:
    """Gives a typed array literal of values (the rules' statements take their own parameters; '%' doubled)."""
    text = [None if v is None else str(v) for v in values]
    return psycopg.sql.Literal(text).as_string(ctx.cur.connection).replace("%", "%%") + f"::{typ}[]"


def _guarded(ctx: CheckContext, statement: str, rules: Sequence[Rule]) -> list[tuple[Any, ...]] | None:
    """Gives the rows of the rules' statement run in a savepoint, or None when it failed (the snapshot goes on)."""
    try:
        with ctx.cur.connection.transaction(), engine.rules_search_path(ctx.cur, rules, serial=ctx.serial_plans):
            ctx.cur.execute(statement)
            return ctx.cur.fetchall()
    except psycopg.Error as exc:
        if engine.recovery_conflict(exc, ctx.cur.connection) or ctx.cur.connection.closed:
            raise
        return None
