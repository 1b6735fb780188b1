"""0025's clean-up: spent_amount reconciled with ten years of transactions (BUD001, AMT006).

The exact SQL `fix` rendered for these rules when migration 0025 was written, against the schema the
migration has at that point; cleanup_v1 runs it. Frozen: never edit this file (tests/test_migration_freeze.py).
"""

from __future__ import annotations

from .cleanup_v1 import RecomputeStep

CODES = ('BUD001', 'AMT006')
BUDGET_DAYS = 3650

STEPS = (
    RecomputeStep(
        code='BUD001', table='daily_plan',
        candidates="""
WITH keyed AS (
    SELECT user_id, day, category, sum(total) AS total, sum(spent) AS spent, bool_or(planned) AS planned
      FROM (SELECT t.user_id, ((t.spent_at) AT TIME ZONE 'UTC')::date AS day, t.category, t.amount AS total, 0 AS spent, false AS planned
              FROM public."transactions" t
             WHERE t.deleted_at IS NULL AND t.spent_at >= ((((now() AT TIME ZONE 'UTC')::date - 3650))::timestamp AT TIME ZONE 'UTC') AND coalesce(t.amount <> 'NaN' AND abs(t.amount) < 10000000000 AND t.amount = round(t.amount, 2) AND (t.category IS NULL OR char_length(t.category) <= 100), false) AND ((t.spent_at) AT TIME ZONE 'UTC')::date >= ((now() AT TIME ZONE 'UTC')::date - 3650)
            UNION ALL
            SELECT t.user_id, ((t.date) AT TIME ZONE 'UTC')::date, t.category, 0, coalesce(t.spent_amount, 0), true
              FROM public."daily_plan" t WHERE t.date >= ((((now() AT TIME ZONE 'UTC')::date - 3650))::timestamp AT TIME ZONE 'UTC') AND ((t.date) AT TIME ZONE 'UTC')::date >= ((now() AT TIME ZONE 'UTC')::date - 3650)) stacked
     GROUP BY user_id, day, category)
SELECT user_id, day, category FROM keyed WHERE (NOT planned OR total <> spent) AND coalesce(total = 'NaN' OR abs(total) < 10000000000, true) ORDER BY 1, 2, 3""",
        lock="""SELECT t.id FROM daily_plan t JOIN (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)) k ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category ORDER BY t.id FOR UPDATE OF t SKIP LOCKED""",
        sums="""CREATE TEMP TABLE mita_fix_sums ON COMMIT DROP AS
WITH k AS (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)),
plan AS (SELECT k.user_id, k.day, k.category, count(*) AS n, count(*) FILTER (WHERE t.id = ANY(%(locked)s)) AS n_locked,
                min(t.id::text)::uuid AS plan_id
           FROM k JOIN daily_plan t ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category GROUP BY 1, 2, 3),
tx AS (SELECT k.user_id, k.day, k.category, sum(t.amount) AS total
         FROM k JOIN transactions t ON t.user_id = k.user_id AND t.category IS NOT DISTINCT FROM k.category
        WHERE t.spent_at IS NOT NULL AND ((t.spent_at) AT TIME ZONE 'UTC')::date = k.day AND t.deleted_at IS NULL AND coalesce(t.amount <> 'NaN' AND abs(t.amount) < 10000000000 AND t.amount = round(t.amount, 2) AND (t.category IS NULL OR char_length(t.category) <= 100), false) GROUP BY 1, 2, 3)
SELECT k.user_id, k.day, k.category, coalesce(tx.total, 0) AS total, p.n, p.n_locked, p.plan_id,
       coalesce(coalesce(tx.total, 0) = 'NaN' OR abs(coalesce(tx.total, 0)) < 10000000000, true) AS fits
  FROM k LEFT JOIN plan p ON p.user_id = k.user_id AND p.day = k.day AND p.category IS NOT DISTINCT FROM k.category
  LEFT JOIN tx ON tx.user_id = k.user_id AND tx.day = k.day AND tx.category IS NOT DISTINCT FROM k.category""",
        update="""WITH old AS (SELECT d.id, to_jsonb(d) AS img
                FROM daily_plan d JOIN mita_fix_sums s ON d.id = s.plan_id WHERE s.n = 1 AND s.n_locked = 1),
changed AS (UPDATE daily_plan d SET spent_amount = s.total FROM mita_fix_sums s
             WHERE d.id = s.plan_id AND s.n = 1 AND s.n_locked = 1 AND s.fits
               AND d.spent_amount IS DISTINCT FROM s.total
            RETURNING d.id AS pk_value, to_jsonb(d) AS after),
pair AS (SELECT c.pk_value, o.img AS before, c.after FROM changed c JOIN old o ON o.id = c.pk_value)
INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'BUD001', 'daily_plan', 'update', jsonb_build_object('id', s.pk_value), s.before, s.after FROM pair s""",
        insert="""WITH added AS (
    INSERT INTO daily_plan (user_id, date, category, planned_amount, spent_amount, created_at)
    SELECT s.user_id, (s.day::timestamp AT TIME ZONE 'UTC'), s.category, 0, s.total, now() FROM mita_fix_sums s
     WHERE s.n IS NULL AND s.fits AND EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)
    ON CONFLICT DO NOTHING
    RETURNING id AS pk_value, NULL::jsonb AS before, to_jsonb(daily_plan) AS after)
INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'BUD001', 'daily_plan', 'insert', jsonb_build_object('id', s.pk_value), s.before, s.after FROM added s""",
    ),
    RecomputeStep(
        code='AMT006', table='daily_plan',
        candidates="""SELECT DISTINCT t.user_id, ((t.date) AT TIME ZONE 'UTC')::date AS day, t.category FROM public."daily_plan" t WHERE (t.spent_amount < 0 AND t.spent_amount <> (SELECT coalesce(sum(amt006_x.amount), 0) FROM public."transactions" amt006_x WHERE amt006_x.user_id = t.user_id AND amt006_x.category IS NOT DISTINCT FROM t.category AND amt006_x.deleted_at IS NULL AND amt006_x.spent_at >= ((t.date AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC') AND amt006_x.spent_at < (((t.date AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC') AND coalesce(amt006_x.amount <> 'NaN' AND abs(amt006_x.amount) < 10000000000 AND amt006_x.amount = round(amt006_x.amount, 2) AND (amt006_x.category IS NULL OR char_length(amt006_x.category) <= 100), false))) AND t.user_id IS NOT NULL AND t.date IS NOT NULL ORDER BY 1, 2, 3""",
        lock="""SELECT t.id FROM daily_plan t JOIN (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)) k ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category ORDER BY t.id FOR UPDATE OF t SKIP LOCKED""",
        sums="""CREATE TEMP TABLE mita_fix_sums ON COMMIT DROP AS
WITH k AS (SELECT DISTINCT * FROM unnest(%(users)s::uuid[], %(days)s::date[], %(cats)s::text[]) AS k0(user_id, day, category)),
plan AS (SELECT k.user_id, k.day, k.category, count(*) AS n, count(*) FILTER (WHERE t.id = ANY(%(locked)s)) AS n_locked,
                min(t.id::text)::uuid AS plan_id
           FROM k JOIN daily_plan t ON t.user_id = k.user_id AND t.date >= (k.day::timestamp AT TIME ZONE 'UTC') AND t.date < ((k.day + 1)::timestamp AT TIME ZONE 'UTC') AND t.category IS NOT DISTINCT FROM k.category GROUP BY 1, 2, 3),
tx AS (SELECT k.user_id, k.day, k.category, sum(t.amount) AS total
         FROM k JOIN transactions t ON t.user_id = k.user_id AND t.category IS NOT DISTINCT FROM k.category
        WHERE t.spent_at IS NOT NULL AND ((t.spent_at) AT TIME ZONE 'UTC')::date = k.day AND t.deleted_at IS NULL AND coalesce(t.amount <> 'NaN' AND abs(t.amount) < 10000000000 AND t.amount = round(t.amount, 2) AND (t.category IS NULL OR char_length(t.category) <= 100), false) GROUP BY 1, 2, 3)
SELECT k.user_id, k.day, k.category, coalesce(tx.total, 0) AS total, p.n, p.n_locked, p.plan_id,
       coalesce(coalesce(tx.total, 0) = 'NaN' OR abs(coalesce(tx.total, 0)) < 10000000000, true) AS fits
  FROM k LEFT JOIN plan p ON p.user_id = k.user_id AND p.day = k.day AND p.category IS NOT DISTINCT FROM k.category
  LEFT JOIN tx ON tx.user_id = k.user_id AND tx.day = k.day AND tx.category IS NOT DISTINCT FROM k.category""",
        update="""WITH old AS (SELECT d.id, to_jsonb(d) AS img
                FROM daily_plan d JOIN mita_fix_sums s ON d.id = s.plan_id WHERE s.n = 1 AND s.n_locked = 1),
changed AS (UPDATE daily_plan d SET spent_amount = s.total FROM mita_fix_sums s
             WHERE d.id = s.plan_id AND s.n = 1 AND s.n_locked = 1 AND s.fits
               AND d.spent_amount IS DISTINCT FROM s.total
            RETURNING d.id AS pk_value, to_jsonb(d) AS after),
pair AS (SELECT c.pk_value, o.img AS before, c.after FROM changed c JOIN old o ON o.id = c.pk_value)
INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'AMT006', 'daily_plan', 'update', jsonb_build_object('id', s.pk_value), s.before, s.after FROM pair s""",
        insert="""WITH added AS (
    INSERT INTO daily_plan (user_id, date, category, planned_amount, spent_amount, created_at)
    SELECT s.user_id, (s.day::timestamp AT TIME ZONE 'UTC'), s.category, 0, s.total, now() FROM mita_fix_sums s
     WHERE s.n IS NULL AND s.fits AND EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)
    ON CONFLICT DO NOTHING
    RETURNING id AS pk_value, NULL::jsonb AS before, to_jsonb(daily_plan) AS after)
INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'AMT006', 'daily_plan', 'insert', jsonb_build_object('id', s.pk_value), s.before, s.after FROM added s""",
    ),
)
