"""The findings clean data has by nature (information only), counted after the seed: SDL001, USR003, CAL002."""

from __future__ import annotations

from .context import SeedRun

SOFT_DELETE_TABLES = ("transactions", "goals", "installments")


def count_natural(run: SeedRun) -> None:
    """Adds the natural counts to the truth.

    USR003 comes from the seed's own parameters (onboarded users given no transactions: every other user's
    first transaction is live); soft-deleted rows and overspent calendar rows are counted in the tables,
    where the many small random choices that made them are simplest to add up.
    """
    run.truth.add("USR003", run.scalar("SELECT count(*) FROM seed_users WHERE onboarded AND n_tx = 0"))
    for table in SOFT_DELETE_TABLES:
        run.truth.add("SDL001", run.scalar(f"SELECT count(*) FROM {table} WHERE deleted_at IS NOT NULL"), table)
    run.truth.add("CAL002", run.scalar(
        "SELECT count(*) FROM daily_plan WHERE spent_amount > planned_amount AND planned_amount > 0"))
