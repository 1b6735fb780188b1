"""Defects of the calendar (daily_plan), each on the plan row of a victim's first transaction's key.

That key is in the budget window and has live spending > 0, and no other calendar defect touches it.
Duplicates split the key's spending across their rows, as the application did, so they alone are no
BUD001 mismatch; drift, a missing row and a negative spent_amount are.
"""

from __future__ import annotations

from .context import DAY, SeedRun
from .plan import ORPHAN_PLAN_USERS


def collect_plan_rows(run: SeedRun) -> None:
    """Finds each calendar victim's plan row (by the key of its first transaction) into seed_plan_victims."""
    run.execute("""
CREATE TEMP TABLE seed_plan_victims ON COMMIT DROP AS
SELECT k.kind, k.slot, d.*
  FROM seed_k1 k
  JOIN daily_plan d ON d.user_id = k.user_id AND d.category = k.category
                   AND d.date = (k.spent_at AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC'
 WHERE k.kind LIKE 'plan\\_%'""")


def _update(run: SeedRun, kind: str, assignment: str) -> int:
    return run.execute(f"UPDATE daily_plan d SET {assignment} FROM seed_plan_victims p "
                       f"WHERE p.kind = '{kind}' AND d.id = p.id")


def break_plan(run: SeedRun) -> None:
    """Applies every calendar defect and records what each rule must find."""
    collect_plan_rows(run)
    # An edit applied twice: the row counts its first transaction again.
    n = run.execute("UPDATE daily_plan d SET spent_amount = d.spent_amount + k.amount FROM seed_plan_victims p "
                    "JOIN seed_k1 k ON k.kind = p.kind AND k.slot = p.slot "
                    "WHERE p.kind = 'plan_drift' AND d.id = p.id")
    run.truth.add("BUD001", n)
    n = run.execute("DELETE FROM daily_plan d USING seed_plan_victims p WHERE p.kind = 'plan_missing' AND d.id = p.id")
    run.rows["daily_plan"] -= n
    run.truth.add("BUD001", n)
    run.truth.add("AMT005", _update(run, "plan_negative_planned", "planned_amount = -p.planned_amount"))
    # A deletion reversed twice leaves the day below zero: wrong (BUD001) and impossible (AMT006).
    n = _update(run, "plan_negative_spent", "spent_amount = -p.spent_amount")
    run.truth.add("AMT006", n)
    run.truth.add("BUD001", n)
    run.truth.add("CAL001", _update(run, "plan_time_of_day", "date = p.date + interval '9 hours 15 minutes' "
                                                             "+ (p.slot % 40) * interval '1 minute'"))
    _duplicates(run)
    _orphans(run)


def _duplicates(run: SeedRun) -> None:
    """Re-submitted onboarding (same date), a time-of-day twin (14:30) and NULL-category pairs: DUP002."""
    h = run.h
    copies = ("CROSS JOIN generate_series(1, CASE WHEN p.kind = 'plan_resubmitted' AND p.slot % 2 = 1 "
              "THEN 2 ELSE 1 END) AS c(copy)")
    # Each copy takes 30 % of the spending (to the cent, rounded down); the first row keeps the rest.
    n = run.insert("daily_plan", f"""
INSERT INTO daily_plan (id, user_id, date, plan_json, created_at, category, planned_amount, spent_amount,
                        daily_budget, status)
SELECT {h.uuid('plan-dup', 'p.id', 'c.copy')}, p.user_id,
       CASE WHEN p.kind = 'plan_time_duplicate' THEN p.date + interval '14 hours 30 minutes' ELSE p.date END,
       p.plan_json, p.created_at + c.copy * interval '3 days', p.category, p.planned_amount,
       trunc(p.spent_amount * 0.3, 2), p.daily_budget, p.status
  FROM seed_plan_victims p {copies}
 WHERE p.kind IN ('plan_resubmitted', 'plan_time_duplicate')""")
    run.execute(f"""
UPDATE daily_plan d SET spent_amount = d.spent_amount - x.copies * trunc(d.spent_amount * 0.3, 2)
  FROM (SELECT p.id, count(*) AS copies FROM seed_plan_victims p {copies}
         WHERE p.kind IN ('plan_resubmitted', 'plan_time_duplicate') GROUP BY p.id) x
 WHERE d.id = x.id""")
    run.truth.add("DUP002", n)
    run.truth.add("CAL001", run.scalar("SELECT count(*) FROM seed_plan_victims WHERE kind = 'plan_time_duplicate'"))
    pairs = run.insert("daily_plan", f"""
INSERT INTO daily_plan (id, user_id, date, plan_json, created_at, category, planned_amount, spent_amount,
                        daily_budget, status)
SELECT {h.uuid('plan-null', 'p.id', 'c.copy')}, p.user_id, p.date, NULL,
       p.created_at + c.copy * interval '1 hour', NULL, round(p.daily_budget * 0.1, 2), 0, p.daily_budget, 'green'
  FROM seed_plan_victims p CROSS JOIN generate_series(1, 2) AS c(copy)
 WHERE p.kind = 'plan_null_category'""")
    run.truth.add("DUP002", pairs // 2)
    run.truth.add("DUP002.groups", run.scalar(
        "SELECT count(*) FROM seed_plan_victims "
        "WHERE kind IN ('plan_resubmitted', 'plan_time_duplicate', 'plan_null_category')"))


def _orphans(run: SeedRun) -> None:
    """Calendar rows of users who no longer exist (REF003): planned, nothing spent, around today."""
    users = ORPHAN_PLAN_USERS.size(run.options.users)
    n = run.insert("daily_plan", f"""
INSERT INTO daily_plan (id, user_id, date, plan_json, created_at, category, planned_amount, spent_amount,
                        daily_budget, status)
SELECT {run.h.uuid('orphan-plan', 'o.i', 'c.d')}, {run.h.uuid('orphan-plan-user', 'o.i')},
       to_timestamp({run.today} + c.d * {DAY}), NULL, to_timestamp({run.today} - {2 * DAY}),
       'food', 20 + o.i % 10, 0, 60, 'green'
  FROM generate_series(1, {users}) AS o(i) CROSS JOIN generate_series(-1, 1) AS c(d)""")
    run.truth.add("REF003", n)
