-- Least-privilege roles for mita-integrity (docs/least-privilege.md explains every line).
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/roles.sql
--
-- Run it in the MITA database as the role that owns the MITA tables (the role migrations run as), or as a
-- superuser with -v owner=THAT_ROLE. It is idempotent: run it again after every `migrate upgrade` or
-- mita-integrity upgrade (it grants on the tables that exist then, and re-creates nothing that exists).
-- Optional psql variables: reader, writer (the two group roles' names), owner (see above).
--
-- mita_integrity_reader: check, rules, sql, fix (the dry run), runs, verify (its probes need the writer).
-- mita_integrity_writer: the reader's privileges, plus fix --apply, undo, check --record / --alert, schedule.
-- Neither can change the schema: migrations stay with the owner. Log in with your own roles, members of these:
--   CREATE ROLE oncall LOGIN PASSWORD '…' IN ROLE mita_integrity_reader;
--   CREATE ROLE fixer LOGIN PASSWORD '…' IN ROLE mita_integrity_writer;

\set ON_ERROR_STOP on
\if :{?reader}
\else
  \set reader mita_integrity_reader
\endif
\if :{?writer}
\else
  \set writer mita_integrity_writer
\endif

-- 1. The two group roles (NOLOGIN), created once; the writer is a member of the reader.
SELECT format('CREATE ROLE %I NOLOGIN', :'reader')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader') \gexec
SELECT format('CREATE ROLE %I NOLOGIN', :'writer')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'writer') \gexec
SELECT format('GRANT %I TO %I', :'reader', :'writer')
 WHERE NOT pg_has_role(:'writer', :'reader', 'MEMBER') \gexec
-- CONNECT (PUBLIC has it by default; a hardened database revoked it). Only the database's owner may grant it.
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'reader')
  FROM pg_database WHERE datname = current_database() AND pg_has_role(datdba, 'USAGE') \gexec
-- TEMPORARY, likewise: a fix batch computes what it writes in a temporary table (merged and recomputed amounts,
-- the values a row repair sets), under the catalog's search_path alone.
SELECT format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), :'writer')
  FROM pg_database WHERE datname = current_database() AND pg_has_role(datdba, 'USAGE') \gexec

-- 2. From here on as the owner of the MITA tables: the integrity schema is theirs, and so are the defaults.
\if :{?owner}
SET ROLE :"owner";
\endif

-- 3. The reader: SELECT on every table of public, now and in the future (ALTER DEFAULT PRIVILEGES covers
--    the tables this role creates later, i.e. the ones migrations add).
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";

-- 4. The writer: change rows (repairs archive, then update, delete or insert; undo puts rows back), never DDL,
--    never TRUNCATE. USAGE on sequences for the rows a repair inserts (a missing daily_plan row).
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"writer";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"writer";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT INSERT, UPDATE, DELETE ON TABLES TO :"writer";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO :"writer";

-- 5. The integrity schema (run history and the archive of every repaired row), created here by the owner so
--    that neither role needs CREATE anywhere. The statements are integrity_schema.script() of
--    src/mita_integrity/runs/integrity_schema.py: the version table, then every upgrade step and the row that records
--    it (a test keeps them equal); mita-integrity executes nothing when the schema is at its version.
CREATE SCHEMA IF NOT EXISTS integrity;
CREATE TABLE IF NOT EXISTS integrity.schema_version (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL DEFAULT current_user);
CREATE TABLE IF NOT EXISTS integrity.runs (
        id uuid PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('check', 'fix', 'undo')),
        status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        db_user text NOT NULL DEFAULT current_user,
        backend_pid integer DEFAULT pg_backend_pid(),
        tool_version text,
        options jsonb NOT NULL DEFAULT '{}',
        summary jsonb NOT NULL DEFAULT '{}',
        report jsonb,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS runs_started_at_idx ON integrity.runs (started_at);
CREATE TABLE IF NOT EXISTS integrity.archive (
        id bigserial PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES integrity.runs (id),
        rule_code text NOT NULL,
        table_name text NOT NULL,
        action text NOT NULL CHECK (action IN ('delete', 'update', 'insert')),
        pk jsonb NOT NULL,
        before jsonb,
        after jsonb,
        archived_at timestamptz NOT NULL DEFAULT now(),
        restored_by uuid REFERENCES integrity.runs (id),
        restored_at timestamptz);
CREATE INDEX IF NOT EXISTS archive_run_id_idx ON integrity.archive (run_id, id);
CREATE TABLE IF NOT EXISTS integrity.run_results (
        run_id uuid NOT NULL REFERENCES integrity.runs (id) ON DELETE CASCADE,
        fingerprint text NOT NULL,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        status text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (run_id, fingerprint));
CREATE TABLE IF NOT EXISTS integrity.findings (
        fingerprint text PRIMARY KEY,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        message text NOT NULL DEFAULT '',
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        last_count bigint NOT NULL,
        last_run_id uuid,
        resolved_at timestamptz);
CREATE TABLE IF NOT EXISTS integrity.alert_outbox (
        channel text NOT NULL,
        fingerprint text NOT NULL,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        count bigint NOT NULL,
        run_id uuid,
        told_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (channel, fingerprint));
INSERT INTO integrity.schema_version (version, name) VALUES (1, 'adopt the unversioned tables (runs, archive, run_results, findings, alert_outbox)') ON CONFLICT (version) DO NOTHING;
CREATE TABLE IF NOT EXISTS integrity.check_bases (
        run_id uuid PRIMARY KEY REFERENCES integrity.runs (id) ON DELETE CASCADE,
        catalogue text NOT NULL,
        options jsonb NOT NULL,
        snapshot text NOT NULL,
        snap_xmin bigint NOT NULL,
        snap_xmax bigint NOT NULL,
        datoid bigint NOT NULL,
        stats_reset timestamptz,
        utc_date date NOT NULL,
        tables jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS integrity.check_base_results (
        run_id uuid NOT NULL REFERENCES integrity.check_bases (run_id) ON DELETE CASCADE,
        code text NOT NULL,
        table_name text NOT NULL,
        status text NOT NULL,
        count bigint NOT NULL,
        groups bigint,
        message text,
        col text,
        sample text[] NOT NULL,
        keys text[],
        PRIMARY KEY (run_id, code, table_name));
INSERT INTO integrity.schema_version (version, name) VALUES (2, 'the bases of incremental checks: check_bases, check_base_results') ON CONFLICT (version) DO NOTHING;
CREATE TABLE IF NOT EXISTS integrity.change_log (
        txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        tbl "char" NOT NULL,
        pk uuid NOT NULL,
        user_id uuid,
        at timestamptz,
        category text);
CREATE INDEX IF NOT EXISTS change_log_txid_idx ON integrity.change_log (txid);
CREATE TABLE IF NOT EXISTS integrity.change_log_pruned (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        below xid8 NOT NULL);
INSERT INTO integrity.schema_version (version, name) VALUES (3, 'the change log of old keys: change_log, change_log_pruned') ON CONFLICT (version) DO NOTHING;

-- 6. The reader reads the history (runs, verify's recent-check); the writer records runs, archives rows and
--    keeps the alert outbox (what each channel has been told: rewritten after each delivery).
--    No one but the owner may DELETE from the archive: it is what undo restores from.
GRANT USAGE ON SCHEMA integrity TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA integrity TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA integrity GRANT SELECT ON TABLES TO :"reader";
GRANT INSERT, UPDATE ON integrity.runs, integrity.archive, integrity.run_results, integrity.findings,
      integrity.alert_outbox TO :"writer";
GRANT INSERT ON integrity.check_bases, integrity.check_base_results TO :"writer";
-- a recorded check prunes the change log (what every usable base can see) and remembers the bound
GRANT DELETE ON integrity.change_log TO :"writer";
GRANT INSERT, UPDATE ON integrity.change_log_pruned TO :"writer";
GRANT DELETE ON integrity.runs, integrity.run_results, integrity.findings, integrity.alert_outbox TO :"writer";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA integrity TO :"writer";

\if :{?owner}
RESET ROLE;
\endif
