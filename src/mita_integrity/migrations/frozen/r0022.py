"""0022's clean-up: orphans of daily_plan (REF003) and subscriptions (REF004) archived and removed.

The exact SQL `fix` rendered for these rules when migration 0022 was written, against the schema the
migration has at that point; cleanup_v1 runs it. Frozen: never edit this file (tests/test_migration_freeze.py).
"""

from __future__ import annotations

from .cleanup_v1 import RowStep

CODES = ('REF003', 'REF004')
BUDGET_DAYS = 30

STEPS = (
    RowStep(
        code='REF003', table='daily_plan',
        candidates="""SELECT t.id FROM public."daily_plan" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref003_p WHERE ref003_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."daily_plan" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref003_p WHERE ref003_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "daily_plan" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF003', 'daily_plan', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF004', table='subscriptions',
        candidates="""SELECT t.id FROM public."subscriptions" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref004_p WHERE ref004_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."subscriptions" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref004_p WHERE ref004_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "subscriptions" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF004', 'subscriptions', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
)
