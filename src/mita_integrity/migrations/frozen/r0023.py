"""0023's clean-up: calendar dates normalised to midnight (CAL001) and the rows of a key merged (DUP002).

The exact SQL `fix` rendered for these rules when migration 0023 was written, against the schema the
migration has at that point; cleanup_v1 runs it. Frozen: never edit this file (tests/test_migration_freeze.py).
"""

from __future__ import annotations

from .cleanup_v1 import MergeStep

CODES = ('CAL001', 'DUP002')
BUDGET_DAYS = 30

STEPS = (
    MergeStep(
        code='CAL001', table='daily_plan',
        candidates="""SELECT t.user_id, ((t.date) AT TIME ZONE 'UTC')::date AS day, t.category FROM daily_plan t WHERE t.user_id IS NOT NULL AND t.date IS NOT NULL GROUP BY 1, 2, 3 HAVING bool_or((t.date AT TIME ZONE 'UTC')::time <> '00:00') ORDER BY 1, 2, 3""",
        lock="""SELECT t.id FROM daily_plan t JOIN (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)) k ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category ORDER BY t.id FOR UPDATE OF t SKIP LOCKED""",
        members="""CREATE TEMP TABLE mita_fix_members ON COMMIT DROP AS
SELECT * FROM (
  SELECT t.id, k.day, to_jsonb(t) AS img, t.date, t.spent_amount, t.planned_amount, t.daily_budget,
         row_number() OVER w AS rank, count(*) OVER w AS n,
         count(*) FILTER (WHERE t.id = ANY(%(locked)s)) OVER w AS n_locked,
         bool_or((t.date AT TIME ZONE 'UTC')::time <> '00:00') OVER w AS has_time,
         sum(t.spent_amount) OVER w AS spent_sum,
         CASE WHEN t.category = 'goal_savings' THEN sum(t.planned_amount) OVER w
              ELSE max(t.planned_amount) OVER w END AS planned_max,
         max(t.daily_budget) OVER w AS budget_max
    FROM daily_plan t JOIN (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)) k ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category
  WINDOW w AS (PARTITION BY t.user_id, k.day, t.category ORDER BY t.created_at NULLS LAST, t.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) m
 WHERE n = n_locked AND (n > 1 OR has_time)""",
        unfit="""DELETE FROM mita_fix_members m WHERE NOT (coalesce(m.spent_sum = 'NaN' OR abs(m.spent_sum) < 10000000000, true) AND coalesce(m.planned_max = 'NaN' OR abs(m.planned_max) < 10000000000, true))""",
        delete="""WITH gone AS (DELETE FROM daily_plan d USING mita_fix_members m WHERE d.id = m.id AND m.rank > 1 RETURNING d.id AS pk_value, m.img AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'CAL001', 'daily_plan', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
        keeper="""WITH changed AS (UPDATE daily_plan d SET (date, spent_amount, planned_amount, daily_budget) = ((m.day::timestamp AT TIME ZONE 'UTC'), m.spent_sum, m.planned_max, m.budget_max) FROM mita_fix_members m WHERE d.id = m.id AND m.rank = 1 AND (m.date, m.spent_amount, m.planned_amount, m.daily_budget) IS DISTINCT FROM ((m.day::timestamp AT TIME ZONE 'UTC'), m.spent_sum, m.planned_max, m.budget_max) RETURNING d.id AS pk_value, m.img AS before, to_jsonb(d) AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'CAL001', 'daily_plan', 'update', jsonb_build_object('id', s.pk_value), s.before, s.after FROM changed s""",
    ),
    MergeStep(
        code='DUP002', table='daily_plan',
        candidates="""SELECT t.user_id, ((t.date) AT TIME ZONE 'UTC')::date AS day, t.category FROM daily_plan t WHERE t.user_id IS NOT NULL AND t.date IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1 ORDER BY 1, 2, 3""",
        lock="""SELECT t.id FROM daily_plan t JOIN (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)) k ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category ORDER BY t.id FOR UPDATE OF t SKIP LOCKED""",
        members="""CREATE TEMP TABLE mita_fix_members ON COMMIT DROP AS
SELECT * FROM (
  SELECT t.id, k.day, to_jsonb(t) AS img, t.date, t.spent_amount, t.planned_amount, t.daily_budget,
         row_number() OVER w AS rank, count(*) OVER w AS n,
         count(*) FILTER (WHERE t.id = ANY(%(locked)s)) OVER w AS n_locked,
         bool_or((t.date AT TIME ZONE 'UTC')::time <> '00:00') OVER w AS has_time,
         sum(t.spent_amount) OVER w AS spent_sum,
         CASE WHEN t.category = 'goal_savings' THEN sum(t.planned_amount) OVER w
              ELSE max(t.planned_amount) OVER w END AS planned_max,
         max(t.daily_budget) OVER w AS budget_max
    FROM daily_plan t JOIN (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)) k ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category
  WINDOW w AS (PARTITION BY t.user_id, k.day, t.category ORDER BY t.created_at NULLS LAST, t.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) m
 WHERE n = n_locked AND (n > 1 OR has_time)""",
        unfit="""DELETE FROM mita_fix_members m WHERE NOT (coalesce(m.spent_sum = 'NaN' OR abs(m.spent_sum) < 10000000000, true) AND coalesce(m.planned_max = 'NaN' OR abs(m.planned_max) < 10000000000, true))""",
        delete="""WITH gone AS (DELETE FROM daily_plan d USING mita_fix_members m WHERE d.id = m.id AND m.rank > 1 RETURNING d.id AS pk_value, m.img AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'DUP002', 'daily_plan', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
        keeper="""WITH changed AS (UPDATE daily_plan d SET (date, spent_amount, planned_amount, daily_budget) = ((m.day::timestamp AT TIME ZONE 'UTC'), m.spent_sum, m.planned_max, m.budget_max) FROM mita_fix_members m WHERE d.id = m.id AND m.rank = 1 AND (m.date, m.spent_amount, m.planned_amount, m.daily_budget) IS DISTINCT FROM ((m.day::timestamp AT TIME ZONE 'UTC'), m.spent_sum, m.planned_max, m.budget_max) RETURNING d.id AS pk_value, m.img AS before, to_jsonb(d) AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'DUP002', 'daily_plan', 'update', jsonb_build_object('id', s.pk_value), s.before, s.after FROM changed s""",
    ),
)
