-- Migration 0025, down: removes the daily_plan.spent_amount trigger and its function (idempotent).
-- spent_amount keeps its values; from here on only the application maintains it (BUD001 watches it).

DROP TRIGGER IF EXISTS trg_transactions_daily_plan_spent ON transactions;
DROP FUNCTION IF EXISTS update_daily_plan_spent();
