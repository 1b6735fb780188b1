"""0026's clean-up: rows of users that do not exist archived and removed (REF001, REF005, REF010).

The exact SQL `fix` rendered for these rules when migration 0026 was written, against the schema the
migration has at that point; cleanup_v1 runs it. Frozen: never edit this file (tests/test_migration_freeze.py).
"""

from __future__ import annotations

from .cleanup_v1 import Dependent, RowStep

CODES = ('REF001', 'REF005', 'REF010')
BUDGET_DAYS = 30

STEPS = (
    RowStep(
        code='REF001', table='transactions',
        candidates="""SELECT t.id FROM public."transactions" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref001_p WHERE ref001_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."transactions" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref001_p WHERE ref001_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "transactions" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF001', 'transactions', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF005', table='habits',
        candidates="""SELECT t.id FROM public."habits" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref005_p WHERE ref005_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."habits" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref005_p WHERE ref005_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "habits" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF005', 'habits', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
        dependents=(Dependent(child='habit_completions', cascade=True,
                              select="""SELECT "id" FROM "habit_completions" WHERE "habit_id" = ANY(%s) ORDER BY 1 FOR UPDATE""",
                              change="""WITH gone AS (DELETE FROM "habit_completions" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF005', 'habit_completions', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s"""),),
    ),
    RowStep(
        code='REF010', table='ai_analysis_snapshots',
        candidates="""SELECT t.id FROM public."ai_analysis_snapshots" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."ai_analysis_snapshots" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "ai_analysis_snapshots" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'ai_analysis_snapshots', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='budget_advice',
        candidates="""SELECT t.id FROM public."budget_advice" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."budget_advice" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "budget_advice" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'budget_advice', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='challenge_participations',
        candidates="""SELECT t.id FROM public."challenge_participations" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."challenge_participations" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "challenge_participations" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'challenge_participations', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='feature_access_logs',
        candidates="""SELECT t.id FROM public."feature_access_logs" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."feature_access_logs" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "feature_access_logs" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'feature_access_logs', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='feature_usage_logs',
        candidates="""SELECT t.id FROM public."feature_usage_logs" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."feature_usage_logs" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "feature_usage_logs" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'feature_usage_logs', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='installment_achievements',
        candidates="""SELECT t.id FROM public."installment_achievements" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."installment_achievements" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "installment_achievements" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'installment_achievements', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='installment_calculations',
        candidates="""SELECT t.id FROM public."installment_calculations" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."installment_calculations" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "installment_calculations" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'installment_calculations', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='installments',
        candidates="""SELECT t.id FROM public."installments" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."installments" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "installments" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'installments', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
        dependents=(Dependent(child='installment_calculations', cascade=False,
                              select="""SELECT "id" FROM "installment_calculations" WHERE "installment_id" = ANY(%s) ORDER BY 1 FOR UPDATE""",
                              change="""WITH old AS (SELECT t."id" AS pk_value, to_jsonb(t) AS before FROM "installment_calculations" t WHERE t."id" = ANY(%(ids)s)), changed AS (UPDATE "installment_calculations" t SET "installment_id" = NULL WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS after), pair AS (SELECT c.pk_value, o.before, c.after FROM changed c JOIN old o USING (pk_value)) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'installment_calculations', 'update', jsonb_build_object('id', s.pk_value), s.before, s.after FROM pair s"""),),
    ),
    RowStep(
        code='REF010', table='moods',
        candidates="""SELECT t.id FROM public."moods" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."moods" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "moods" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'moods', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='notification_logs',
        candidates="""SELECT t.id FROM public."notification_logs" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."notification_logs" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "notification_logs" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'notification_logs', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='notifications',
        candidates="""SELECT t.id FROM public."notifications" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."notifications" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "notifications" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'notifications', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='paywall_impression_logs',
        candidates="""SELECT t.id FROM public."paywall_impression_logs" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."paywall_impression_logs" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "paywall_impression_logs" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'paywall_impression_logs', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='push_tokens',
        candidates="""SELECT t.id FROM public."push_tokens" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."push_tokens" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "push_tokens" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'push_tokens', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
    RowStep(
        code='REF010', table='user_financial_profiles',
        candidates="""SELECT t.id FROM public."user_financial_profiles" t WHERE (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1""",
        lock="""SELECT t.id FROM public."user_financial_profiles" t WHERE t.id = ANY(%(ids)s) AND (t.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public."users" ref010_p WHERE ref010_p.id = t.user_id)) ORDER BY 1 FOR UPDATE OF t SKIP LOCKED""",
        change="""WITH gone AS (DELETE FROM "user_financial_profiles" t WHERE t."id" = ANY(%(ids)s) RETURNING t."id" AS pk_value, to_jsonb(t) AS before, NULL::jsonb AS after) INSERT INTO integrity.archive (run_id, rule_code, table_name, action, pk, before, after) SELECT '<run id>'::uuid, 'REF010', 'user_financial_profiles', 'delete', jsonb_build_object('id', s.pk_value), s.before, s.after FROM gone s""",
    ),
)
