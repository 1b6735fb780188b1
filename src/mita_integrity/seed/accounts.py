"""Paid plans and money profiles: subscriptions, financial profiles, installments, push tokens."""

from __future__ import annotations

from .context import DAY, SeedRun, per_user
from .people import money

_ITEMS = ("iPhone 15", "Sofa", "Laptop", "Washing machine", "TV", "E-bike", "Fridge", "Gaming console")
_ITEM_CATEGORY = ("electronics", "furniture", "electronics", "appliances", "electronics", "transport",
                  "appliances", "electronics")
_ITEM_PRICE = (1000, 900, 1400, 600, 800, 1800, 1100, 500)


def _arr(values: tuple[object, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values) + "]"


def insert_accounts(run: SeedRun) -> None:
    """Inserts subscriptions (premium users, a few lapsed), financial profiles, installments, push tokens."""
    h, now = run.h, run.now
    premium = "(s.bits & 15) < 3"
    lapsed = "((s.bits >> 56) & 15) = 0"
    run.insert("subscriptions", f"""
INSERT INTO subscriptions (id, user_id, platform, receipt, status, created_at, plan, starts_at, expires_at)
SELECT {h.uuid('sub', 's.n')}, s.id, x.platform,
       jsonb_build_object('store', x.platform, 'product_id', 'mita.premium.' || x.plan,
                          'transaction_id', md5('{run.options.seed}:receipt:' || s.n)),
       CASE WHEN {premium} THEN 'active' WHEN (s.bits & 16) = 0 THEN 'expired' ELSE 'cancelled' END,
       to_timestamp(x.starts), x.plan, to_timestamp(x.starts), to_timestamp(x.expires)
  FROM seed_users s
 CROSS JOIN LATERAL (
    SELECT CASE WHEN (s.bits & 32) = 0 THEN 'ios' ELSE 'android' END AS platform,
           CASE WHEN (s.bits & 64) = 0 THEN 'monthly' ELSE 'annual' END AS plan,
           CASE WHEN {premium} THEN {now} + ((s.bits >> 4) & 255) * {DAY}
                ELSE {now} - (1 + ((s.bits >> 4) & 63)) * {DAY} END AS expires) e
 CROSS JOIN LATERAL (SELECT e.*, e.expires - CASE WHEN e.plan = 'monthly' THEN 30 ELSE 365 END * {DAY}
                            AS starts) x
 WHERE {premium} OR {lapsed}
 ORDER BY s.n""")
    run.insert("user_financial_profiles", f"""
INSERT INTO user_financial_profiles (id, user_id, monthly_income, current_balance, age_group, credit_card_debt,
                                     credit_card_payment, other_loans_payment, rent_payment,
                                     subscriptions_payment, planning_mortgage, updated_at)
SELECT {h.uuid('ufp', 's.n')}, s.id, coalesce(s.monthly, 0), round(coalesce(s.monthly, 0) * (x.r * 3)::numeric, 2),
       (ARRAY['18-24', '25-34', '25-34', '35-44', '45-54', '55+'])[1 + ((s.bits >> 20) & 7) % 6],
       (s.bits >> 23) & 3 = 0,
       CASE WHEN (s.bits >> 23) & 3 = 0 THEN round(coalesce(s.monthly, 0) * 0.05, 2) ELSE 0 END,
       0, round(coalesce(s.monthly, 0) * 0.3, 2), {money('25 * s.scale', 's.whole')}, (s.bits >> 25) & 7 = 0,
       to_timestamp(s.created_epoch + {DAY})
  FROM seed_users s CROSS JOIN LATERAL (SELECT {h.unit('s.n', 401)} AS r) x
 WHERE s.onboarded AND ((s.bits >> 28) & 7) < 3
 ORDER BY s.n""")
    has_installments = "((s.bits >> 60) & 7) = 0"
    run.insert("installments", f"""
INSERT INTO installments (id, user_id, item_name, category, total_amount, payment_amount, interest_rate,
                          total_payments, payments_made, payment_frequency, first_payment_date,
                          next_payment_date, final_payment_date, status, notes, created_at, updated_at, deleted_at)
SELECT {h.uuid('inst', 'r.rk')}, s.id, ({_arr(_ITEMS)})[x.item + 1], ({_arr(_ITEM_CATEGORY)})[x.item + 1],
       x.total, round(x.total * (1 + x.rate / 100) / x.payments, 2), x.rate, x.payments,
       least(x.payments, x.made), 'monthly', to_timestamp(x.first),
       to_timestamp(x.first + (least(x.payments - 1, x.made)) * 30 * {DAY}),
       to_timestamp(x.first + (x.payments - 1) * 30 * {DAY}),
       CASE WHEN x.made >= x.payments THEN 'completed' ELSE 'active' END, NULL,
       to_timestamp(x.first - 7 * {DAY}), to_timestamp(x.first - 7 * {DAY}),
       CASE WHEN {h.unit('r.rk', 402)} < 0.05 THEN to_timestamp(x.first) END
  FROM {per_user(f"CASE WHEN {has_installments} THEN 1 + ((s.bits >> 58) & 1) ELSE 0 END")}
 CROSS JOIN LATERAL (
    SELECT {h.below('r.rk', 403, len(_ITEMS))} AS item,
           (ARRAY[3, 6, 12, 24])[1 + {h.below('r.rk', 404, 4)}] AS payments,
           {h.below('r.rk', 405, 14)} AS made,
           (ARRAY[0, 0, 9.9, 14.5])[1 + {h.below('r.rk', 406, 4)}]::numeric AS rate,
           {money(f"({_arr(_ITEM_PRICE)})[1 + {h.below('r.rk', 403, len(_ITEMS))}] * s.scale", 's.whole')} AS total,
           {now} - {h.below('r.rk', 407, 300)} * {DAY} AS first) x
 ORDER BY s.n, j.j""")
    run.insert("installment_calculations", f"""
INSERT INTO installment_calculations (id, user_id, installment_id, purchase_amount, category, num_payments,
                                      interest_rate, monthly_payment, total_interest, risk_level, dti_ratio,
                                      payment_to_income_ratio, remaining_balance, risk_factors, user_proceeded,
                                      calculated_at)
SELECT {h.uuid('calc', 'r.rk')}, s.id,
       CASE WHEN j.j = 1 AND {has_installments} THEN {h.uuid('inst', 's.n * 8 + 1')} END,
       x.price, 'electronics', 12, 9.9, round(x.price * 1.099 / 12, 2), round(x.price * 0.099, 2),
       (ARRAY['low', 'medium', 'high'])[1 + {h.below('r.rk', 411, 3)}],
       round((x.ratio * 40)::numeric, 2), round((x.ratio * 15)::numeric, 2),
       x.price, NULL, j.j = 1 AND {has_installments}, to_timestamp({now} - {h.below('r.rk', 412, 200)} * {DAY})
  FROM {per_user(f"CASE WHEN {has_installments} OR ((s.bits >> 57) & 7) = 0 THEN 1 + ((s.bits >> 55) & 1) ELSE 0 END")}
 CROSS JOIN LATERAL (SELECT {money(f"(200 + 1800 * {h.unit('r.rk', 413)}) * s.scale", 's.whole')} AS price,
                            {h.unit('r.rk', 414)} AS ratio) x
 ORDER BY s.n, j.j""")
    run.insert("installment_achievements", f"""
INSERT INTO installment_achievements (id, user_id, installments_completed, calculations_performed,
                                      calculations_declined, days_without_new_installment, max_days_streak,
                                      interest_saved, achievement_level, last_calculation_date, updated_at)
SELECT {h.uuid('ach', 's.n')}, s.id, 0, 1 + ((s.bits >> 55) & 1), (s.bits >> 55) & 1, (s.bits >> 40) & 63,
       (s.bits >> 40) & 127, 0, 'beginner', to_timestamp({now} - {2 * DAY}), to_timestamp({now} - {2 * DAY})
  FROM seed_users s WHERE {has_installments} OR ((s.bits >> 57) & 7) = 0
 ORDER BY s.n""")
    run.insert("push_tokens", f"""
INSERT INTO push_tokens (id, user_id, token, created_at, platform)
SELECT {h.uuid('push', 's.n')}, s.id, 'ExponentPushToken[' || md5('{run.options.seed}:push:' || s.n) || ']',
       to_timestamp(s.created_epoch + 600), CASE WHEN (s.bits & 32) = 0 THEN 'ios' ELSE 'android' END
  FROM seed_users s WHERE ((s.bits >> 46) & 7) < 3
 ORDER BY s.n""")
