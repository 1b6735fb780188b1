"""0024's clean-up: goal progress recomputed from saved and target (GOL001).

The exact SQL `fix` rendered for these rules when migration 0024 was written, against the schema the
migration has at that point; cleanup_v1 runs it. Frozen: never edit this file (tests/test_migration_freeze.py).
"""

from __future__ import annotations

from .cleanup_v1 import RowStep

CODES = ('GOL001',)
BUDGET_DAYS = 30

STEPS = (
    RowStep(
        code='GOL001', table='goals',
        candidates="""SELECT t.id FROM public."goals" t WHERE (t.target_amount > 0 AND abs(t.progress - least(t.saved_amount / t.target_amount * 100, 100)) > 0.01) AND t.deleted_at IS NULL ORDER BY 1""",
        lock="""SELECT t.id FROM public."goals" t WHERE t.id = ANY(%(ids)s) AND (t.target_amount > 0 AND abs(t.progress - least(t.saved_amount / t.target_amount * 100, 100)) > 0.01) AND t.deleted_at IS NULL ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH old AS (SELECT t."id" AS pk_value, to_jsonb(t) AS before FROM "goals" t WHERE t."id" = ANY(%(ids)s)), changed AS (UPDATE "goals" t SET progress = least(t.saved_amount / t.target_amount * 100, 100) WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS after), pair AS (SELECT c.pk_value, o.before, c.after FROM changed c JOIN old o USING (pk_value)) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'GOL001', 'goals', 'update', jsonb_build_object('id', s.pk_value), s.before, s.after FROM pair s""",
        still="""SELECT t.id FROM public."goals" t WHERE t.id = ANY(%(ids)s) AND (t.target_amount > 0 AND abs(t.progress - least(t.saved_amount / t.target_amount * 100, 100)) > 0.01) AND t.deleted_at IS NULL""",
    ),
)
