-- Migration 0025: keep daily_plan.spent_amount right from the database itself.
--
-- update_daily_plan_spent() runs AFTER every INSERT, UPDATE and DELETE of a transactions row and applies
-- additive deltas to the plan row of the row's key (never a SUM recompute, so its cost does not grow
-- with the day's spending). Precondition (migration 0023): uq_daily_plan_user_date_category UNIQUE NULLS
-- NOT DISTINCT (user_id, date, category) and every daily_plan.date at midnight UTC.
--
-- A transactions row counts when deleted_at IS NULL AND spent_at IS NOT NULL AND amount IS NOT NULL AND
-- user_id IS NOT NULL. Its key is (user_id, day, category), day = (spent_at AT TIME ZONE 'UTC')::date —
-- the shared day definition, mita_integrity.rules.dayboundary.transaction_day_sql — and its plan row is
-- the daily_plan row (user_id, day::timestamp AT TIME ZONE 'UTC', category), NULL categories matching
-- each other. Per event: the OLD row, when it counted, takes -OLD.amount from OLD's key; the NEW row,
-- when it counts, gives +NEW.amount to NEW's key; one key on both sides gets the one delta NEW - OLD
-- (nothing when that is 0, so an edit of notes, tags or the like writes no plan row).
--   * Adding (the NEW side) upserts: a missing plan row is created (planned_amount 0), even for an
--     amount of 0, so that every key with live transactions has its plan row.
--   * Subtracting (the OLD side only: DELETE, soft delete, a move away) only UPDATEs: a missing plan row
--     stays missing. When a user is deleted, ON DELETE CASCADE removes their daily_plan and transactions
--     rows, and this trigger's events for the cascaded transactions fire only after every cascade ran:
--     the plan rows are gone, and an INSERT here would break daily_plan's foreign key and the deletion.
--   * The (at most two) keys are always written in one fixed order — user_id, day, category with NULLS
--     FIRST — whatever the operation, so two concurrent single-row statements never wait on each other's
--     plan rows in opposite orders: no deadlock. (Within one multi-row statement the rows are handled one
--     by one in the statement's order, like the transactions rows themselves.)
--
-- Row level, not statement level with transition tables (measured on PostgreSQL 16, on a busy 2-core
-- machine, against a prototype of the latter): a statement-level trigger aggregates a bulk INSERT ...
-- SELECT per key and was about twice as fast there (100,000 rows over 10,000 keys: 6.6 s against 13.5 s,
-- 4.8 s without a trigger), but it costs every single-row statement — the application's writes, the case
-- that matters — more than this one (three statements over the transition table against one upsert).
-- PostgreSQL also allows transition tables only on single-event triggers: it would take three triggers
-- where the contract (verify, the docs) names one. Here a bulk statement pays one small upsert per row.
-- The adding side is one INSERT ... ON CONFLICT DO UPDATE rather than UPDATE-then-INSERT: measured, a few
-- microseconds slower when the plan row exists, but much cheaper for a day's first transaction (no missed
-- UPDATE first), and most transactions open their key (86 % of the seed's are the first of their key).
-- What remains is essentially the write of the plan row (a statement start, a probe of the unique key, a
-- heap update or insert and, unless the update is HOT, an entry in each of daily_plan's 6 indexes), the
-- write the application made itself on every transaction before (benchmarks/trigger.py, measure (d)).
-- The subtraction finds its plan row through the unique index; it splits on a NULL category so that the
-- lookup is an index equality on all three columns (IS NOT DISTINCT FROM is not indexable).
-- Idempotent (CREATE OR REPLACE, DROP TRIGGER IF EXISTS); PostgreSQL 15 and later. Down: the _down file.

CREATE OR REPLACE FUNCTION update_daily_plan_spent() RETURNS trigger
LANGUAGE plpgsql AS $function$
DECLARE
    old_counts boolean := false;
    new_counts boolean := false;
    old_date timestamptz;  -- the plan row's date of OLD's key: its UTC day at midnight UTC
    new_date timestamptz;
    delta numeric;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_counts := OLD.deleted_at IS NULL AND OLD.spent_at IS NOT NULL AND OLD.amount IS NOT NULL
                      AND OLD.user_id IS NOT NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_counts := NEW.deleted_at IS NULL AND NEW.spent_at IS NOT NULL AND NEW.amount IS NOT NULL
                      AND NEW.user_id IS NOT NULL;
    END IF;
    IF old_counts THEN
        old_date := ((OLD.spent_at AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC';
    END IF;
    IF new_counts THEN
        new_date := ((NEW.spent_at AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC';
    END IF;

    IF old_counts AND new_counts AND NEW.user_id = OLD.user_id AND new_date = old_date
       AND NEW.category IS NOT DISTINCT FROM OLD.category THEN
        -- one key: one delta, no write when it is 0
        delta := NEW.amount - OLD.amount;
        IF delta <> 0 THEN
            INSERT INTO daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
            VALUES (NEW.user_id, new_date, NEW.category, 0, delta, now())
            ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
            DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount;
        END IF;
        RETURN NULL;
    END IF;

    -- Two keys (or one side only). NEW's key goes first only when both count and it sorts before OLD's
    -- (the keys differ here: equal user and day leave the categories, NULL first).
    IF old_counts AND new_counts AND (
           NEW.user_id < OLD.user_id
           OR (NEW.user_id = OLD.user_id AND new_date < old_date)
           OR (NEW.user_id = OLD.user_id AND new_date = old_date
               AND (NEW.category IS NULL OR (OLD.category IS NOT NULL AND NEW.category < OLD.category)))) THEN
        INSERT INTO daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
        VALUES (NEW.user_id, new_date, NEW.category, 0, NEW.amount, now())
        ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
        DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount;
        new_counts := false;  -- done
    END IF;

    IF old_counts THEN
        IF OLD.category IS NULL THEN
            UPDATE daily_plan SET spent_amount = coalesce(spent_amount, 0) - OLD.amount
             WHERE user_id = OLD.user_id AND date = old_date AND category IS NULL;
        ELSE
            UPDATE daily_plan SET spent_amount = coalesce(spent_amount, 0) - OLD.amount
             WHERE user_id = OLD.user_id AND date = old_date AND category = OLD.category;
        END IF;
    END IF;

    IF new_counts THEN
        INSERT INTO daily_plan AS p (user_id, date, category, planned_amount, spent_amount, created_at)
        VALUES (NEW.user_id, new_date, NEW.category, 0, NEW.amount, now())
        ON CONFLICT ON CONSTRAINT uq_daily_plan_user_date_category
        DO UPDATE SET spent_amount = coalesce(p.spent_amount, 0) + EXCLUDED.spent_amount;
    END IF;

    RETURN NULL;
END
$function$;

COMMENT ON FUNCTION update_daily_plan_spent() IS
    'Migration 0025: applies each transactions row change to daily_plan.spent_amount as additive deltas '
    '(UTC day of spent_at; live rows only; missing plan rows upserted on the adding side only).';

DROP TRIGGER IF EXISTS trg_transactions_daily_plan_spent ON transactions;
CREATE TRIGGER trg_transactions_daily_plan_spent
    AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION update_daily_plan_spent();
