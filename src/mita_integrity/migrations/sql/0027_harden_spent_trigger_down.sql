-- Migration 0027, down: removes the TRUNCATE trigger; the migration then runs 0025's file again, which puts
-- back 0025's update_daily_plan_spent() (CREATE OR REPLACE also drops 0027's pinned search_path).

DROP TRIGGER IF EXISTS trg_transactions_daily_plan_spent_truncate ON public.transactions;
