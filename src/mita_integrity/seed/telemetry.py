"""App telemetry and the legacy varchar-keyed tables: feature and paywall logs, AI snapshots, old profiles."""

from __future__ import annotations

from .context import DAY, SeedRun, per_user

_FEATURES = ("budget_view", "add_transaction", "goals", "insights", "calendar", "ai_advisor", "installments")
_SCREENS = ("home", "budget", "goals", "insights", "settings", "calendar")
_TEMPLATES = (
    ("overspend_food", "You spent more on food than planned today."),
    ("under_budget", "You are under budget this week. Nice!"),
    ("goal_close", "You are close to reaching a goal."),
    ("subscription_review", "Review your subscriptions this month."),
    ("weekend_spike", "Weekend spending is usually higher: plan ahead."),
    ("income_received", "Income received: consider saving a part of it."),
)
_QUESTIONS = ("monthly_income", "spending_habits", "savings_goal")


def insert_telemetry(run: SeedRun) -> None:
    """Inserts feature usage, feature access and paywall logs, AI snapshots and advice templates."""
    h, now = run.h, run.now
    run.insert("feature_usage_logs", f"""
INSERT INTO feature_usage_logs (id, user_id, feature, screen, action, extra_data, session_id, platform,
                                app_version, timestamp)
SELECT {h.uuid('usage', 'r.rk')}, s.id, {h.pick(_FEATURES, 'r.rk', 601)}, {h.pick(_SCREENS, 'r.rk', 602)},
       {h.pick(('view', 'tap', 'create', 'edit'), 'r.rk', 603)}, NULL, left(md5('{run.options.seed}:sess:' || s.n), 16),
       CASE WHEN (s.bits & 32) = 0 THEN 'ios' ELSE 'android' END, '2.' || ((s.bits >> 19) & 7) || '.0',
       to_timestamp({now} - {h.below('r.rk', 604, 7 * DAY)})
  FROM {per_user("CASE WHEN ((s.bits >> 21) & 3) = 0 THEN 1 + ((s.bits >> 23) & 1) ELSE 0 END")}
 ORDER BY s.n, j.j""")
    run.insert("feature_access_logs", f"""
INSERT INTO feature_access_logs (id, user_id, feature, has_access, is_premium_feature, converted_to_premium,
                                 converted_at, screen, extra_data, timestamp)
SELECT {h.uuid('access', 's.n')}, s.id, 'ai_advisor', (s.bits & 15) < 3, true, false, NULL, 'insights', NULL,
       to_timestamp({now} - {h.below('s.n', 611, 7 * DAY)})
  FROM seed_users s WHERE ((s.bits >> 24) & 7) = 0
 ORDER BY s.n""")
    run.insert("paywall_impression_logs", f"""
INSERT INTO paywall_impression_logs (id, user_id, screen, feature, resulted_in_purchase, purchase_timestamp,
                                     impression_context, extra_data, timestamp)
SELECT {h.uuid('paywall', 's.n')}, s.id, 'insights', 'ai_advisor', false, NULL, 'feature_gate', NULL,
       to_timestamp({now} - {h.below('s.n', 621, 7 * DAY)})
  FROM seed_users s WHERE ((s.bits >> 24) & 7) = 1 AND (s.bits & 15) >= 3
 ORDER BY s.n""")
    run.insert("ai_analysis_snapshots", f"""
INSERT INTO ai_analysis_snapshots (user_id, rating, risk, summary, full_profile, created_at)
SELECT s.id, {h.pick(('A', 'B', 'C', 'D'), 's.n', 631)}, {h.pick(('low', 'moderate', 'high'), 's.n', 632)},
       'Spending is steady; food and groceries lead.',
       json_build_object('currency', s.currency, 'monthly_income', s.monthly),
       to_timestamp({now} - {h.below('s.n', 633, 30 * DAY)})
  FROM seed_users s WHERE s.onboarded AND ((s.bits >> 26) & 3) = 0
 ORDER BY s.n""")
    values = ", ".join(f"({h.uuid('tpl', str(i))}, '{k}', '{t}')" for i, (k, t) in enumerate(_TEMPLATES))
    run.insert("ai_advice_templates", f"INSERT INTO ai_advice_templates (id, key, text) VALUES {values}")


def insert_legacy(run: SeedRun) -> None:
    """Inserts the varchar-keyed tables (expenses, user_answers, user_profiles) with valid user uuids."""
    h, today = run.h, run.today
    run.insert("expenses", f"""
INSERT INTO expenses (user_id, action, amount, date)
SELECT s.id::text, {h.pick(('add', 'edit', 'delete'), 'r.rk', 641)},
       round((5 + 95 * {h.unit('r.rk', 642)})::numeric, 2)::float8,
       (to_timestamp({today} - {h.below('r.rk', 643, 300)} * {DAY}) AT TIME ZONE 'UTC')::date
  FROM {per_user("CASE WHEN ((s.bits >> 29) & 3) = 0 THEN 1 ELSE 0 END")}
 ORDER BY s.n, j.j""")
    questions = "ARRAY[" + ", ".join(f"'{q}'" for q in _QUESTIONS) + "]"
    run.insert("user_answers", f"""
INSERT INTO user_answers (user_id, question_key, answer_json)
SELECT s.id::text, ({questions})[j.j], json_build_object('answer', {h.below('r.rk', 651, 5)})::text
  FROM {per_user(f"CASE WHEN s.onboarded AND ((s.bits >> 31) & 3) = 0 THEN {len(_QUESTIONS)} ELSE 0 END")}
 ORDER BY s.n, j.j""")
    run.insert("user_profiles", """
INSERT INTO user_profiles (user_id, data)
SELECT s.id::text, json_build_object('currency', s.currency, 'region', s.region)::text
  FROM seed_users s WHERE s.onboarded AND ((s.bits >> 33) & 3) = 0
 ORDER BY s.n""")
