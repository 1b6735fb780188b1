"""The `integrity` schema: the run history and the archive of every row a repair changed or removed.

Created by the first write (a fix, an undo, a recorded check), never by `check`. Creation is idempotent
and online: IF NOT EXISTS everywhere, serialised by an advisory lock so two first runs cannot race,
under a short lock_timeout. Nothing here touches the application's tables.

`integrity.archive` keeps, per changed row, the primary key, the row before (`before`, NULL for a row a
repair inserted) and the row as the repair left it (`after`, NULL for a removed row). `after` is how
`undo` knows a row was changed again since: it then reports a conflict instead of overwriting.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from .connection import transaction
from .errors import DatabaseStateError

if TYPE_CHECKING:
    from .findings import Report

SCHEMA = "integrity"
_LOCK_KEY = 7_416_902_211  # any constant: serialises the first creation

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
        id uuid PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('check', 'fix', 'undo')),
        status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        db_user text NOT NULL DEFAULT current_user,
        backend_pid integer DEFAULT pg_backend_pid(),
        tool_version text,
        options jsonb NOT NULL DEFAULT '{{}}',
        summary jsonb NOT NULL DEFAULT '{{}}',
        report jsonb,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())  -- the database's clock, for schedulers""",
    f"CREATE INDEX IF NOT EXISTS runs_started_at_idx ON {SCHEMA}.runs (started_at)",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.archive (
        id bigserial PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES {SCHEMA}.runs (id),
        rule_code text NOT NULL,
        table_name text NOT NULL,
        action text NOT NULL CHECK (action IN ('delete', 'update', 'insert')),
        pk jsonb NOT NULL,
        before jsonb,
        after jsonb,
        archived_at timestamptz NOT NULL DEFAULT now(),
        restored_by uuid REFERENCES {SCHEMA}.runs (id),
        restored_at timestamptz)""",
    f"CREATE INDEX IF NOT EXISTS archive_run_id_idx ON {SCHEMA}.archive (run_id, id)",
    # The history of recorded checks: every result of every run, and each finding's life (history.py).
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.run_results (
        run_id uuid NOT NULL REFERENCES {SCHEMA}.runs (id) ON DELETE CASCADE,
        fingerprint text NOT NULL,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        status text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (run_id, fingerprint))""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.findings (
        fingerprint text PRIMARY KEY,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        message text NOT NULL DEFAULT '',
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        last_count bigint NOT NULL,
        last_run_id uuid,
        resolved_at timestamptz)""",
    # What each alert channel has been told: per channel, the open findings and the count it last heard of
    # them (alerts/outbox.py). What is due to a channel is the difference from integrity.findings.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.alert_outbox (
        channel text NOT NULL,
        fingerprint text NOT NULL,
        code text NOT NULL,
        table_name text NOT NULL,
        severity text NOT NULL,
        count bigint NOT NULL,
        run_id uuid,
        told_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (channel, fingerprint))""",
    # ---- check --incremental (issue 19): what a recorded check keeps for the next incremental one -------------
    # Its snapshot and tables (check_bases), and per result its count and every violating row's key
    # (check_base_results.keys: the text of the primary key). Both cascade from integrity.runs: pruned with it.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.check_bases (
        run_id uuid PRIMARY KEY REFERENCES {SCHEMA}.runs (id) ON DELETE CASCADE,
        catalogue text NOT NULL,
        options jsonb NOT NULL,
        snapshot text NOT NULL,
        snap_xmin bigint NOT NULL,
        snap_xmax bigint NOT NULL,
        datoid bigint NOT NULL,
        stats_reset timestamptz,
        utc_date date NOT NULL,
        tables jsonb NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.check_base_results (
        run_id uuid NOT NULL REFERENCES {SCHEMA}.check_bases (run_id) ON DELETE CASCADE,
        code text NOT NULL,
        table_name text NOT NULL,
        status text NOT NULL,
        count bigint NOT NULL,
        groups bigint,
        message text,
        col text,
        sample text[] NOT NULL,
        keys text[],
        PRIMARY KEY (run_id, code, table_name))""",
    # ---- end of issue 19 ------------------------------------------------------------------------------------
)


# The objects DDL creates (the schema first), by name: when all are there, ensure() executes nothing.
_OBJECTS = tuple(re.findall(r"IF NOT EXISTS (?:\w+\.)?(\w+)", " ".join(DDL)))
SETUP_HINT = ("create it once as the owner of the MITA tables: psql -f docs/roles.sql "
              "(docs/least-privilege.md), or run this command once as that owner")


def _present(cur: psycopg.Cursor[Any]) -> set[str]:
    """Gives the integrity objects that exist (from the catalog: needs no privilege on the schema)."""
    cur.execute("SELECT nspname FROM pg_namespace WHERE nspname = %(s)s UNION ALL SELECT c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s AND c.relname = ANY(%(o)s)",
                {"s": SCHEMA, "o": list(_OBJECTS[1:])})
    return {str(r[0]) for r in cur.fetchall()}


def ensure(conn: psycopg.Connection[Any]) -> None:
    """Creates the integrity schema and its tables when absent (its own short transaction).

    When they all exist nothing is executed, so a role without CREATE (docs/roles.sql) can write.
    """
    try:
        with transaction(conn, lock_timeout_ms=5_000, statement_timeout_ms=60_000) as cur:
            if len(_present(cur)) == len(_OBJECTS):
                return
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            present = _present(cur)
            for name, statement in zip(_OBJECTS, DDL, strict=True):
                if name not in present:  # IF NOT EXISTS still asks for CREATE: skip what is there
                    cur.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseStateError(f"cannot create the integrity schema ({exc.diag.message_primary}); nothing was "
                                 "changed", SETUP_HINT) from None


def exists(cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether the integrity tables are there (reading them never creates them)."""
    cur.execute("SELECT count(*) = 2 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname IN ('runs', 'archive') AND c.relkind = 'r'", (SCHEMA,))
    row = cur.fetchone()
    return bool(row and row[0])


def may_create(cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether the schema is complete, or the role may create what is missing of it."""
    if len(_present(cur)) == len(_OBJECTS):
        return True
    cur.execute("SELECT CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE') "
                "ELSE pg_has_role(n.nspowner, 'USAGE') END "
                "FROM (SELECT 1) x LEFT JOIN pg_namespace n ON n.nspname = %s", (SCHEMA,))
    row = cur.fetchone()
    return bool(row and row[0])


def missing_privileges(cur: psycopg.Cursor[Any], needs: dict[str, str]) -> list[str]:
    """Gives what the role lacks of `needs` ({integrity table: 'INSERT, UPDATE'}), or how to create the schema."""
    if not may_create(cur):
        return ["CREATE on the database (for the integrity schema)"]
    cur.execute("SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s", (SCHEMA,))
    row = cur.fetchone()
    if row is None:
        return []
    lacking = [] if row[0] else [f"USAGE on schema {SCHEMA}"]
    for table, privileges in needs.items():
        for privilege in (p.strip() for p in privileges.split(",")):
            if table_privilege(cur, table, privilege, SCHEMA) is False:
                lacking.append(f"{privilege} on {SCHEMA}.{table}")
    return lacking


def table_privilege(cur: psycopg.Cursor[Any], table: str, privilege: str, schema: str = "public") -> bool | None:
    """Tells whether the role has privilege on schema.table; None when there is no such table.

    By oid from the catalog: naming the table fails for a role without USAGE on its schema.
    """
    cur.execute("SELECT has_table_privilege(c.oid, %s) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s", (privilege, schema, table))
    row = cur.fetchone()
    return None if row is None else bool(row[0])


def start_run(conn: psycopg.Connection[Any], kind: str, options: dict[str, Any], version: str) -> uuid.UUID:
    """Records a run as started (committed at once, so an interrupted run stays visible); gives its id."""
    run_id = uuid.uuid4()
    with transaction(conn) as cur:
        cur.execute(f"INSERT INTO {SCHEMA}.runs (id, kind, tool_version, options) VALUES (%s, %s, %s, %s)",
                    (run_id, kind, version, Jsonb(options)))
    return run_id


def finish_run(conn: psycopg.Connection[Any], run_id: uuid.UUID, status: str, summary: dict[str, Any],
               report: dict[str, Any] | None = None) -> None:
    """Records the end of a run: its status, summary and (for checks) the report."""
    with transaction(conn) as cur:
        cur.execute(f"UPDATE {SCHEMA}.runs SET status = %s, finished_at = now(), summary = %s, report = %s "
                    "WHERE id = %s",
                    (status, Jsonb(summary), Jsonb(report) if report is not None else None, run_id))


# What each kind of write needs on the integrity tables (docs/roles.sql grants it to the writer).
RECORD_NEEDS = {"runs": "SELECT, INSERT, UPDATE", "run_results": "SELECT, INSERT", "findings": "SELECT, INSERT, UPDATE"}
FIX_NEEDS = {"runs": "SELECT, INSERT, UPDATE", "archive": "SELECT, INSERT"}
UNDO_NEEDS = {"runs": "SELECT, INSERT, UPDATE", "archive": "SELECT, UPDATE"}
ALERT_NEEDS = {**RECORD_NEEDS, "alert_outbox": "SELECT, INSERT, DELETE"}


def refuse_read_only(cur: psycopg.Cursor[Any], what: str, done: str = "nothing was changed") -> None:
    """Raises one clear error on a server that only reads (a replica, or default_transaction_read_only)."""
    cur.execute("SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only') = 'on'")
    row = cur.fetchone()
    if row and row[0]:
        raise DatabaseStateError(f"this server only reads (a replica, or default_transaction_read_only is on): "
                                 f"{what} needs to write; {done}", "point --db at the primary server")


def refuse_lacking(cur: psycopg.Cursor[Any], what: str, lacking: list[str], done: str = "nothing was changed") -> None:
    """Raises one clear error naming the privileges the role lacks (none: returns)."""
    if not lacking:
        return
    cur.execute("SELECT current_user")
    row = cur.fetchone()
    raise DatabaseStateError(f"role {row[0] if row else '?'} lacks {'; '.join(lacking)}: {what} needs them; {done}",
                             "grant them (docs/roles.sql: mita_integrity_reader reads, mita_integrity_writer "
                             "writes; docs/least-privilege.md), or use the role that owns the MITA tables")


def refuse_unreadable(cur: psycopg.Cursor[Any], what: str) -> None:
    """Raises one clear error when the run history exists but the role may not read it."""
    cur.execute("SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'runs'", (SCHEMA,))
    row = cur.fetchone()
    if row is not None and not row[0]:
        refuse_lacking(cur, what, [f"USAGE on schema {SCHEMA} or SELECT on {SCHEMA}.runs"], "nothing was read")


def check_record_privileges(cur: psycopg.Cursor[Any]) -> None:
    """Raises one clear error when the role cannot record a check run (before the check runs)."""
    refuse_read_only(cur, "check --record", "nothing was run")
    refuse_lacking(cur, "check --record", missing_privileges(cur, RECORD_NEEDS), "nothing was run")


def record_check(conn: psycopg.Connection[Any], report: Report) -> str:
    """Stores a finished check run with its results and findings (see history.record); gives its id."""
    from .history import record

    return record(conn, report).run_id


def insert_check_run(cur: psycopg.Cursor[Any], report: Report) -> None:
    """Inserts a finished check run (kind 'check', status 'completed'), keeping the report's own id and times."""
    failing = [r for r in report.results if r.failed]
    summary: dict[str, Any] = {**report.summary(), "failing": len(failing), "violations": sum(r.count for r in failing),
               "results": len(report.results)}
    if "mode" in report.options:  # check --incremental: how it ran (full when it had to fall back)
        summary["mode"] = report.mode
    cur.execute(f"INSERT INTO {SCHEMA}.runs (id, kind, status, started_at, finished_at, tool_version, options, "
                "summary, report) VALUES (%s, 'check', 'completed', %s, %s, %s, %s, %s, %s)",
                (report.run_id, report.started_at, report.finished_at, report.tool_version,
                 Jsonb(report.options), Jsonb(summary), Jsonb(report.to_json())))
