"""Which row versions were written since a recorded base: the one test check --incremental makes of a row.

Imports nothing of the project (the package's modules use it).
"""

from __future__ import annotations


def changed_sql(window: int, alias: str = "t") -> str:
    """Gives SQL telling whether a row version was written since the base: its xmin is at most `window`
    transactions old (age() counts modulo 2^32 from one stable point of this transaction; see
    incremental._window)."""
    return f"(age({alias}.xmin) <= {int(window)})"
