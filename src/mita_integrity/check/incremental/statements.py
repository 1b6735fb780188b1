"""How the package's own statements run: in a savepoint each (a failure costs a rule, not the snapshot), timed
as passes of the report, with lists written as typed literals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

import psycopg
import psycopg.sql

from ...findings import PassTiming
from .. import engine
from ..rules.base import Rule
from ..rules.context import CheckContext

T = TypeVar("T")


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


def _on_connections(ctx: CheckContext, helpers: Sequence[CheckContext], items: Sequence[T],
                    reader: Callable[[CheckContext], Callable[[T], None]], *, serial: bool = False) -> None:
    """Reads the items on the snapshot's connections (the helpers imported it), each connection taking the next
    (give them biggest first). reader(wctx) gives, once a connection, what reads one item on it. `serial`: with
    serial plans (each connection keeps a core busy, see engine.run). A failure is raised once every connection
    is done."""
    contexts = [ctx, *helpers] if helpers and len(items) > 1 else [ctx]
    lock = threading.Lock()
    queue = list(items)

    def work(wctx: CheckContext) -> None:
        read = reader(wctx)
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop(0)
            read(item)

    if len(contexts) == 1:
        work(ctx)
        return
    for c in contexts:
        c.serial_plans = serial
    try:
        with ThreadPoolExecutor(max_workers=len(contexts)) as pool:
            futures = [pool.submit(work, c) for c in contexts]
            wait(futures)
            for future in futures:
                future.result()
    finally:
        for c in contexts:
            c.serial_plans = False
