-- Migration 0027: update_daily_plan_spent() (0025) hardened at the edges of the data. Same contract, same
-- additive deltas, same lock order as 0025 (read 0025_daily_plan_spent_trigger.sql first); what changed:
--
-- * What the plan can hold. daily_plan.category is varchar(100) and spent_amount numeric(12,2), while
--   transactions.category is unbounded and transactions.amount is numeric without a scale. 0025 wrote
--   every row into the plan: a category over 100 characters made the application's own write fail
--   (StringDataRightTruncation), a 101-character one ending in a space was cut silently into another key
--   (its delete then subtracted nothing), 0.005 was rounded into 0.01 on the way in and again on the way
--   out, 'NaN' made the plan row NaN for ever and a day's total of 10^10 or more rejected the write.
--   Decision: the plan's columns stay as they are (the application reads them), and a transactions row
--   counts in the plan only when the plan can hold it exactly — mita_integrity.rules.plan_limits:
--   amount finite, at most two decimals, below 10^10 in size; category NULL or at most 100 characters.
--   Any other row counts nowhere (as if it had no spent_at) and rule BUD002 names it as a row that needs a
--   person; the application's write always succeeds, and nothing is cut or rounded. A key whose total
--   would leave numeric(12,2) keeps its plan row unchanged (the write succeeds; BUD002 names the key's
--   transactions and BUD001 leaves the key alone until it fits again). BUD001 and its repair use the same
--   definition, so plan, trigger and BUD001 agree exactly.
-- * TRUNCATE transactions leaves no transaction: a statement-level AFTER TRUNCATE trigger sets every
--   non-zero spent_amount to 0.
-- * search_path is pinned on the function (pg_dump's scripts run with search_path = pg_catalog) and every
--   relation is schema-qualified.
--
-- Restoring a database at head: data-only restores must run with the triggers disabled (pg_restore
-- --disable-triggers, or a dump made with --disable-triggers), else every restored transaction is added
-- again to the restored spent_amount; see docs/operations.md, "Backup and restore".
-- Idempotent (CREATE OR REPLACE, DROP TRIGGER IF EXISTS); PostgreSQL 15 and later. Down: 0027's _down file
-- removes the TRUNCATE trigger, then 0025's file is run again.

CREATE OR REPLACE FUNCTION public.update_daily_plan_spent() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    old_counts boolean := false;
    new_counts boolean := false;
    old_date timestamptz;  -- the plan row's date of OLD's key: its UTC day at midnight UTC
    new_date timestamptz;
    delta numeric;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN  -- no transaction is left: nothing is spent anywhere
        UPDATE public.daily_plan SET spent_amount = 0 WHERE spent_amount <> 0;
        RETURN NULL;
    END IF;
    -- A row counts when it is live, dated, has a user and the plan can hold it exactly (see above).
    IF TG_OP <> 'INSERT' THEN
        old_counts := coalesce(OLD.deleted_at IS NULL AND OLD.spent_at IS NOT NULL AND OLD.user_id IS NOT NULL
                               AND OLD.amount <> 'NaN' AND abs(OLD.amount) < 10000000000
                               AND OLD.amount = round(OLD.amount, 2)
                               AND (OLD.category IS NULL OR char_length(OLD.category) <= 100), false);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_counts := coalesce(NEW.deleted_at IS NULL AND NEW.spent_at IS NOT NULL AND NEW.user_id IS NOT NULL
                               AND NEW.amount <> 'NaN' AND abs(NEW.amount) < 10000000000
                               AND NEW.amount = round(NEW.amount, 2)
                               AND (NEW.category IS NULL OR char_length(NEW.category) <= 100), false);
    END IF;
    IF old_counts THEN
        old_date := ((OLD.spent_at AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC';
    END IF;
    IF new_counts THEN
        new_date := ((NEW.spent_at AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC';
    END IF;

    IF old_counts AND new_counts AND NEW.user_id = OLD.user_id AND new_date = old_date
       AND NEW.category IS NOT DISTINCT FROM OLD.category AND abs(NEW.amount - OLD.amount) < 10000000000 THEN
        -- one key: one delta, no write when it is 0
        delta := NEW.amount - OLD.amount;
        IF delta <> 0 THEN
            INSERT INTO public.daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
            VALUES (NEW.user_id, new_date, NEW.category, 0, delta, now())
            ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
            DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + delta
                    WHERE abs(coalesce(p.spent_amount, 0) + delta) < 10000000000;
        END IF;
        RETURN NULL;
    END IF;

    -- Two keys (or one side only, or one key whose delta alone would not fit: subtract, then add).
    -- NEW's key goes first only when both count and it sorts before OLD's.
    IF old_counts AND new_counts AND (
           NEW.user_id < OLD.user_id
           OR (NEW.user_id = OLD.user_id AND new_date < old_date)
           OR (NEW.user_id = OLD.user_id AND new_date = old_date
               AND ((NEW.category IS NULL AND OLD.category IS NOT NULL)
                    OR (OLD.category IS NOT NULL AND NEW.category < OLD.category)))) THEN
        INSERT INTO public.daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
        VALUES (NEW.user_id, new_date, NEW.category, 0, NEW.amount, now())
        ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
        DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount
                WHERE abs(coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount) < 10000000000;
        new_counts := false;  -- done
    END IF;

    IF old_counts THEN
        IF OLD.category IS NULL THEN
            UPDATE public.daily_plan SET spent_amount = coalesce(spent_amount, 0) - OLD.amount
             WHERE user_id = OLD.user_id AND date = old_date AND category IS NULL
               AND abs(coalesce(spent_amount, 0) - OLD.amount) < 10000000000;
        ELSE
            UPDATE public.daily_plan SET spent_amount = coalesce(spent_amount, 0) - OLD.amount
             WHERE user_id = OLD.user_id AND date = old_date AND category = OLD.category
               AND abs(coalesce(spent_amount, 0) - OLD.amount) < 10000000000;
        END IF;
    END IF;

    IF new_counts THEN
        INSERT INTO public.daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
        VALUES (NEW.user_id, new_date, NEW.category, 0, NEW.amount, now())
        ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
        DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount
                WHERE abs(coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount) < 10000000000;
    END IF;

    RETURN NULL;
END
$function$;

COMMENT ON FUNCTION public.update_daily_plan_spent() IS
    'Migrations 0025 and 0027: applies each transactions row change to daily_plan.spent_amount as additive '
    'deltas (UTC day of spent_at; live rows the plan can hold exactly; missing plan rows upserted on the adding '
    'side only; TRUNCATE sets every spent_amount to 0).';

DROP TRIGGER IF EXISTS trg_transactions_daily_plan_spent ON public.transactions;
CREATE TRIGGER trg_transactions_daily_plan_spent
    AFTER INSERT OR UPDATE OR DELETE ON public.transactions
    FOR EACH ROW EXECUTE FUNCTION public.update_daily_plan_spent();
DROP TRIGGER IF EXISTS trg_transactions_daily_plan_spent_truncate ON public.transactions;
CREATE TRIGGER trg_transactions_daily_plan_spent_truncate
    AFTER TRUNCATE ON public.transactions
    FOR EACH STATEMENT EXECUTE FUNCTION public.update_daily_plan_spent();
