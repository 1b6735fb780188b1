"""What an interrupted migration step leaves behind, recognised and finished or removed before the next one.

Every step of 0022-0026 commits on its own, so a killed upgrade *or downgrade* keeps what it finished and
Alembic still records the revision it started from. A re-run of the same move continues; but the next
command may be another one (`upgrade head` after a killed downgrade finds nothing to run), so the leftovers
are swept first, whatever the command:

- `<fk>_swap`: 0026 swaps a foreign key by adding the new one under this name and then, in one
  transaction, dropping the old one and renaming. A swap key beside its original is dropped (the original
  stands); one without it is renamed to the original's name (the swap had completed but for the name).
- an invalid index of the chain (a CREATE or DROP INDEX CONCURRENTLY cut short): dropped, and built again
  when the recorded revision has it. Only the chain's own index names are touched: an invalid index of
  anyone else may be a build in progress.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..check.rules.expected import CHAIN, USER_FK_TABLES_0026
from ..database.connection import Database, connect
from ..migrations.frozen.kit_v1 import say
from .online import Online


@dataclass(frozen=True)
class ChainIndex:
    """An index a revision of the chain builds (or, for the baseline's, one 0023 drops)."""

    table: str
    definition: str
    present_from: str  # the first revision that has it
    present_until: str | None = None  # the first revision that no longer has it
    leading_column: str | None = None  # an index built only when none leads with this column


def chain_indexes() -> dict[str, ChainIndex]:
    """Gives the indexes the chain builds or drops concurrently, by name."""
    out = {
        "ix_subscriptions_deleted_at": ChainIndex("subscriptions", "(deleted_at) WHERE deleted_at IS NULL",
                                                  "0022_add_missing_fk_constraints"),
        "idx_daily_plan_user_date_category": ChainIndex("daily_plan", "(user_id, date, category)",
                                                        CHAIN[0], "0023_add_unique_constraint_daily_plan"),
        "ix_daily_plan_user_id": ChainIndex("daily_plan", "(user_id)", CHAIN[0],
                                            "0023_add_unique_constraint_daily_plan"),
    }
    for table in USER_FK_TABLES_0026:  # the baseline has these; 0026 would build them where missing
        out[f"ix_{table}_user_id"] = ChainIndex(table, "(user_id)", CHAIN[0])
    out["ix_ai_analysis_snapshots_user_id"] = ChainIndex("ai_analysis_snapshots", "(user_id)",
                                                         "0026_complete_user_foreign_keys", leading_column="user_id")
    return out


def _present_at(index: ChainIndex, revision: str | None) -> bool:
    if revision not in CHAIN:
        return False
    at = CHAIN.index(revision)
    until = CHAIN.index(index.present_until) if index.present_until else len(CHAIN)
    return CHAIN.index(index.present_from) <= at < until


def finish_leftovers(db: Database, revision: str | None) -> list[str]:
    """Removes or finishes what interrupted steps left; gives a line per thing done (printed as progress too)."""
    if revision is None:
        return []
    done: list[str] = []
    with connect(db, autocommit=True) as conn:
        online = Online(conn, say=say)
        for table, swap, original, original_exists in online.query(
                r"""SELECT c.relname, s.conname,
                           left(s.conname, length(s.conname) - 5),
                           EXISTS (SELECT 1 FROM pg_constraint o WHERE o.conrelid = s.conrelid
                                      AND o.conname = left(s.conname, length(s.conname) - 5))
                      FROM pg_constraint s JOIN pg_class c ON c.oid = s.conrelid
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'public' AND s.contype = 'f' AND s.conname LIKE '%\_swap'
                     ORDER BY 1, 2"""):
            if original_exists:
                online.step(f"drop leftover {swap}", f'ALTER TABLE "{table}" DROP CONSTRAINT "{swap}"')
                done.append(f"dropped {swap}, left on {table} by an interrupted foreign key swap ({original} stands)")
            else:
                online.step(f"finish {swap}", f'ALTER TABLE "{table}" RENAME CONSTRAINT "{swap}" TO "{original}"')
                done.append(f"renamed {swap} to {original}: an interrupted swap had completed but for the name")
        known = chain_indexes()
        invalid = [name for (name,) in online.query(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = 'public' AND NOT x.indisvalid "
            "ORDER BY 1") if name in known]
        for name in invalid:
            index = known[name]
            if not _present_at(index, revision):
                online.drop_index(name)
                done.append(f"dropped {name}: an invalid leftover of an interrupted concurrent build or drop")
            elif index.leading_column:
                online.drop_index(name)
                online.ensure_fk_index(index.table, index.leading_column)
                done.append(f"rebuilt {name}: it was invalid (an interrupted concurrent build or drop)")
            else:
                online.ensure_index(name, index.table, index.definition)
                done.append(f"rebuilt {name}: it was invalid (an interrupted concurrent build or drop)")
    for line in done:
        say(f"  leftover: {line}")
    return done
