-- A database-only schedule with pg_cron (where the extension is available, e.g. Supabase): the generated
-- psql script's counts are not runnable by pg_cron (it has \echo lines), so pg_cron runs a small SQL
-- function that stores the counts of the critical rules; mita-integrity verify / check remain the
-- full catalogue. Run as a role that may create the function and schedule jobs.
CREATE SCHEMA IF NOT EXISTS integrity;
CREATE TABLE IF NOT EXISTS integrity.pg_cron_counts (
    checked_at timestamptz NOT NULL DEFAULT now(),
    code text NOT NULL,
    count bigint NOT NULL);

CREATE OR REPLACE FUNCTION integrity.pg_cron_check() RETURNS void LANGUAGE sql AS $$
    INSERT INTO integrity.pg_cron_counts (code, count)
    SELECT 'REF001', count(*) FROM transactions t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)
    UNION ALL
    SELECT 'REF003', count(*) FROM daily_plan d WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = d.user_id)
    UNION ALL
    SELECT 'DUP002', count(*) - count(DISTINCT (user_id, (date AT TIME ZONE 'UTC')::date, category)) FROM daily_plan;
$$;

SELECT cron.schedule('mita-integrity-daily', '0 2 * * *', 'SELECT integrity.pg_cron_check()');
