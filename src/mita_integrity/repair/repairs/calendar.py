"""Repairs of the calendar (daily_plan), keyed by (user_id, day, category).

- MergeRepair (DUP002, CAL001): every row of a key is merged into one keeper — the earliest created_at,
  then the smallest id — whose date becomes the day at midnight UTC, spent_amount the SUM (spending was
  split across the copies), planned_amount and daily_budget the maximum (planned_amount summed for
  `goal_savings`: two goals each plan their own saving, and neither may be lost). The others are archived and
  deleted first (so a unique constraint, if present, never sees two rows), then the keeper is archived
  and updated. A key is merged only when every one of its rows could be locked.
- RecomputeRepair (BUD001, AMT006): spent_amount := the sum of the key's live transactions that the plan can
  hold (rules/plan_limits.py), with the one day definition of rules/dayboundary.py; a key with spending and
  no plan row gets one (archived as an insert, so undo removes it); a key with several plan rows is left to
  DUP002. The missing row is inserted ON CONFLICT DO NOTHING: when the trigger created it meanwhile (a
  concurrent transaction), the key is left for the next pass, which recomputes it under the row's lock.

Neither ever writes a sum numeric(12,2) cannot hold: such a key is left alone and named for a person
(BUD002), so one odd key never fails a whole run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...check.rules.base import RowRule, rel
from ...check.rules.dayboundary import plan_day_sql, transaction_day_sql, user_zones_sql
from ...check.rules.plan_limits import fits_plan_sql, total_fits_sql
from ...check.rules.spending import BUD001_MISMATCH, bud001_keyed_sql
from ...findings import FixSafety
from .base import CHOOSING, EQ, KEYS_SQL, WRITING, BatchOutcome, RepairContext, archive_insert, key_units

if TYPE_CHECKING:
    import psycopg

    from ...check.rules.base import Rule

PLAN_DAY = plan_day_sql("t.date")
NOT_MIDNIGHT = "(t.date AT TIME ZONE 'UTC')::time <> '00:00'"
# plan_day(t.date) = k.day, said as a range on t.date so that an index on date can serve it.
KEY_JOIN = ("t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') "
            "AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category")
MIDNIGHT = "(m.day::timestamp AT TIME ZONE 'UTC')"
LOCK_SQL = (f"SELECT t.id FROM {rel('daily_plan')} t JOIN {KEYS_SQL} k ON {KEY_JOIN} "
            "ORDER BY t.id FOR UPDATE OF t SKIP LOCKED")


def _lock(cur: psycopg.Cursor[Any], units: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Locks the plan rows of the keys, under the catalog's search_path (CHOOSING), which the batch keeps until it
    writes."""
    cur.execute(CHOOSING)
    cur.execute(LOCK_SQL, key_units(units))
    return [r[0] for r in cur.fetchall()]


@dataclass(frozen=True)
class MergeRepair:
    """Merge the rows of a calendar key into its keeper, at midnight (see the module's docstring)."""

    safety: FixSafety
    needs: str  # the HAVING condition that makes a key need the repair
    action: str = "archive, then merge into the earliest row: date at midnight, spent summed, planned the max"

    def candidates_sql(self, ctx: RepairContext, rule: Rule) -> str:
        return (f"SELECT t.user_id, {PLAN_DAY} AS day, t.category FROM {rel('daily_plan')} t "
                f"WHERE t.user_id IS NOT NULL AND t.date IS NOT NULL "
                f"GROUP BY 1, 2, 3 HAVING {self.needs} ORDER BY 1, 2, 3")

    def batch_sql(self, ctx: RepairContext, rule: Rule) -> list[str]:
        members = f"""CREATE TEMP TABLE mita_fix_members ON COMMIT DROP AS
SELECT * FROM (
  SELECT t.id, k.day, to_jsonb(t) AS img, t.date, t.spent_amount, t.planned_amount, t.daily_budget,
         row_number() OVER w AS rank, count(*) OVER w AS n,
         count(*) FILTER (WHERE t.id = ANY(%(locked)s)) OVER w AS n_locked,
         bool_or({NOT_MIDNIGHT}) OVER w AS has_time,
         sum(t.spent_amount) OVER w AS spent_sum,
         CASE WHEN t.category = 'goal_savings' THEN sum(t.planned_amount) OVER w
              ELSE max(t.planned_amount) OVER w END AS planned_max,
         max(t.daily_budget) OVER w AS budget_max
    FROM {rel('daily_plan')} t JOIN {KEYS_SQL} k ON {KEY_JOIN}
  WINDOW w AS (PARTITION BY t.user_id, k.day, t.category ORDER BY t.created_at NULLS LAST, t.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) m
 WHERE n = n_locked AND (n > 1 OR has_time)"""
        # a key whose merged amounts numeric(12,2) cannot hold is left for a person (never a failed run)
        unfit = (f"DELETE FROM mita_fix_members m WHERE NOT ({total_fits_sql('m.spent_sum')} "
                 f"AND {total_fits_sql('m.planned_max')})")
        delete = (f"WITH gone AS (DELETE FROM daily_plan d USING mita_fix_members m WHERE d.id {EQ} m.id "
                  "AND m.rank > 1 "
                  "RETURNING d.id AS pk_value, m.img AS before, NULL::jsonb AS after) "
                  + archive_insert(ctx, rule.code, "daily_plan", "delete", "gone", "id"))
        new = f"({MIDNIGHT}, m.spent_sum, m.planned_max, m.budget_max)"
        keeper = ("WITH changed AS (UPDATE daily_plan d "
                  f"SET (date, spent_amount, planned_amount, daily_budget) = {new} "
                  f"FROM mita_fix_members m WHERE d.id {EQ} m.id AND m.rank = 1 "
                  f"AND (m.date, m.spent_amount, m.planned_amount, m.daily_budget) IS DISTINCT FROM {new} "
                  "RETURNING d.id AS pk_value, m.img AS before, pg_catalog.to_jsonb(d) AS after) "
                  + archive_insert(ctx, rule.code, "daily_plan", "update", "changed", "id"))
        return [CHOOSING, LOCK_SQL, members, unfit, WRITING, delete, keeper]

    def apply(self, cur: psycopg.Cursor[Any], ctx: RepairContext, rule: Rule,
              units: Sequence[tuple[Any, ...]]) -> BatchOutcome:
        locked = _lock(cur, units)
        *_, members, unfit, writing, delete, keeper = self.batch_sql(ctx, rule)
        cur.execute(members, {**key_units(units), "locked": locked})
        cur.execute(unfit)
        too_big = cur.rowcount
        cur.execute("SELECT count(DISTINCT (day, img->>'user_id', img->>'category')) FROM mita_fix_members")
        row = cur.fetchone()
        merged_keys = int(row[0]) if row else 0
        cur.execute(writing)
        cur.execute(delete)
        removed = cur.rowcount
        cur.execute(keeper)
        updated = cur.rowcount
        cur.execute("DROP TABLE mita_fix_members")
        done = BatchOutcome(changed=removed + updated, archived=removed + updated, skipped=len(units) - merged_keys)
        if too_big:
            done.notes.append("keys whose merged spent or planned amount is 10^10 or more (numeric(12,2) cannot hold "
                              "it) were left alone: they need a person")
        return done


@dataclass(frozen=True)
class RecomputeRepair:
    """spent_amount := the sum of the key's live transactions (see the module's docstring)."""

    safety: FixSafety
    action: str = "archive, then set spent_amount to the sum of live transactions (add the missing plan row)"

    def candidates_sql(self, ctx: RepairContext, rule: Rule) -> str:
        if isinstance(rule, RowRule):  # AMT006: the plan rows its predicate selects
            source, where = rule.selection("t.user_id IS NOT NULL AND t.date IS NOT NULL")
            return (f"SELECT DISTINCT t.user_id, {PLAN_DAY} AS day, t.category FROM {source} WHERE {where} "
                    "ORDER BY 1, 2, 3")
        return (f"{bud001_keyed_sql(ctx)}\nSELECT user_id, day, category FROM keyed "
                f"WHERE {BUD001_MISMATCH} ORDER BY 1, 2, 3")

    def batch_sql(self, ctx: RepairContext, rule: Rule) -> list[str]:
        by_zone = ctx.options.day_boundary == "user-timezone"
        zone_join = f" LEFT JOIN ({user_zones_sql()}) z ON z.user_id = t.user_id" if by_zone else ""
        tx_day = transaction_day_sql("t.spent_at", "coalesce(z.zone, 'UTC')" if by_zone else None)
        live = " AND t.deleted_at IS NULL" if ctx.schema.has("transactions.deleted_at") else ""
        sums = f"""CREATE TEMP TABLE mita_fix_sums ON COMMIT DROP AS
WITH k AS {KEYS_SQL},
plan AS (SELECT k.user_id, k.day, k.category, count(*) AS n, count(*) FILTER (WHERE t.id = ANY(%(locked)s)) AS n_locked,
                min(t.id::text)::uuid AS plan_id
           FROM k JOIN {rel('daily_plan')} t ON {KEY_JOIN} GROUP BY 1, 2, 3),
tx AS (SELECT k.user_id, k.day, k.category, sum(t.amount) AS total
         FROM k JOIN {rel('transactions')} t
           ON t.user_id = k.user_id AND t.category IS NOT DISTINCT FROM k.category{zone_join}
        WHERE t.spent_at IS NOT NULL AND {tx_day} = k.day{live} AND {fits_plan_sql()} GROUP BY 1, 2, 3)
SELECT k.user_id, k.day, k.category, coalesce(tx.total, 0) AS total, p.n, p.n_locked, p.plan_id,
       {total_fits_sql('coalesce(tx.total, 0)')} AS fits
  FROM k LEFT JOIN plan p ON p.user_id = k.user_id AND p.day = k.day AND p.category IS NOT DISTINCT FROM k.category
  LEFT JOIN tx ON tx.user_id = k.user_id AND tx.day = k.day AND tx.category IS NOT DISTINCT FROM k.category"""
        update = f"""WITH old AS (SELECT d.id, pg_catalog.to_jsonb(d) AS img
                FROM daily_plan d JOIN mita_fix_sums s ON d.id {EQ} s.plan_id WHERE s.n = 1 AND s.n_locked = 1),
changed AS (UPDATE daily_plan d SET spent_amount = s.total FROM mita_fix_sums s
             WHERE d.id {EQ} s.plan_id AND s.n = 1 AND s.n_locked = 1 AND s.fits
               AND d.spent_amount IS DISTINCT FROM s.total
            RETURNING d.id AS pk_value, pg_catalog.to_jsonb(d) AS after),
pair AS (SELECT c.pk_value, o.img AS before, c.after FROM changed c JOIN old o ON o.id {EQ} c.pk_value)
""" + archive_insert(ctx, rule.code, "daily_plan", "update", "pair", "id")
        insert = f"""WITH added AS (
    INSERT INTO daily_plan (user_id, date, category, planned_amount, spent_amount, created_at)
    SELECT s.user_id, {MIDNIGHT.replace('m.', 's.')}, s.category, 0, s.total, pg_catalog.now() FROM mita_fix_sums s
     WHERE s.n IS NULL AND s.fits AND EXISTS (SELECT 1 FROM users u WHERE u.id {EQ} s.user_id)
    ON CONFLICT DO NOTHING
    RETURNING id AS pk_value, NULL::jsonb AS before, pg_catalog.to_jsonb(daily_plan) AS after)
""" + archive_insert(ctx, rule.code, "daily_plan", "insert", "added", "id")
        return [CHOOSING, LOCK_SQL, sums, WRITING, update, insert]

    def apply(self, cur: psycopg.Cursor[Any], ctx: RepairContext, rule: Rule,
              units: Sequence[tuple[Any, ...]]) -> BatchOutcome:
        locked = _lock(cur, units)
        *_, sums, writing, update, insert = self.batch_sql(ctx, rule)
        cur.execute(sums, {**key_units(units), "locked": locked})
        cur.execute("SELECT count(*) FILTER (WHERE n > 1), count(*) FILTER (WHERE n IS NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {rel('users')} u WHERE u.id = s.user_id)), count(*) FILTER (WHERE NOT fits) "
                    "FROM mita_fix_sums s")
        row = cur.fetchone() or (0, 0, 0)
        several, nobody, too_big = int(row[0]), int(row[1]), int(row[2])
        cur.execute(writing)
        cur.execute(update)
        updated = cur.rowcount
        cur.execute(insert)
        inserted = cur.rowcount
        cur.execute("DROP TABLE mita_fix_sums")
        done = BatchOutcome(changed=updated + inserted, archived=updated + inserted,
                            skipped=len(units) - updated - inserted)
        if several:
            done.notes.append(f"{several} keys have several plan rows: merge them first "
                              "(mita-integrity fix --apply --select DUP002)")
        if too_big:
            done.notes.append(f"{too_big} keys spend 10^10 or more, which numeric(12,2) cannot hold: left alone, "
                              "they need a person (BUD002)")
        if nobody:
            done.notes.append("keys of users that no longer exist get no plan row: their transactions are orphans "
                              "(REF001), removed by `fix --apply --select REF001` or migration 0026")
        return done
