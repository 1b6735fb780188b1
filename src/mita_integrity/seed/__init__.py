"""`seed`: realistic MITA data generated inside PostgreSQL, optionally with every kind of defect in known numbers.

    result = seed_database(conn, SeedOptions(users=1000, days=30, seed=42, corrupt=True))
    result.rows            # rows inserted per table
    result.truth           # {rule code: expected count} (and "DUP00x.groups"), with corrupt=True
    result.truth_by_table  # {code: {table: count}} for REF010, REF011, SDL001

May import: database, findings, wording.
"""

from __future__ import annotations

from .options import SeedOptions, SeedResult
from .runner import seed_database

__all__ = ["SeedOptions", "SeedResult", "seed_database"]
