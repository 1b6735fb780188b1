"""The `integrity` schema: the run history and the archive of every row a repair changed or removed.

Created, or upgraded in place, by the first write (a fix, an undo, a recorded check), never by `check`: its
shape and versions are integrity_schema.py's. Nothing here touches the application's tables.

`integrity.archive` keeps, per changed row, the primary key, the row before (`before`, NULL for a row a
repair inserted) and the row as the repair left it (`after`, NULL for a removed row). `after` is how
`undo` knows a row was changed again since: it then reports a conflict instead of overwriting.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from ..database.connection import transaction
from ..database.errors import DatabaseStateError
from . import integrity_schema

if TYPE_CHECKING:
    from ..findings import Report

SCHEMA = integrity_schema.SCHEMA
SETUP_HINT = ("create it once as the owner of the MITA tables: psql -f docs/roles.sql "
              "(docs/least-privilege.md), or run this command once as that owner")


def ensure(conn: psycopg.Connection[Any]) -> None:
    """Creates, or upgrades in place, the integrity schema to this code's version (integrity_schema.py: its own
    short transaction under an advisory lock). When it is there already nothing is executed, so a role without
    CREATE (docs/roles.sql) can write."""
    try:
        integrity_schema.upgrade(conn)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseStateError(f"cannot create or upgrade the integrity schema ({exc.diag.message_primary}); "
                                 "nothing was changed", SETUP_HINT) from None


def exists(cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether the integrity tables are there (reading them never creates them); refuses, in one line, a
    schema newer than this code (its tables may mean other things)."""
    integrity_schema.refuse_newer(cur)
    cur.execute("SELECT count(*) = 2 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname IN ('runs', 'archive') AND c.relkind = 'r'", (SCHEMA,))
    row = cur.fetchone()
    return bool(row and row[0])


def may_create(cur: psycopg.Cursor[Any]) -> bool:
    """Tells whether the schema is at this code's version, or the role may create (upgrade) it. A version table
    the role may not read is taken as complete: what the role lacks on it is missing_privileges' to say."""
    exists, readable = integrity_schema.state(cur)
    if (exists and not readable) or integrity_schema.current(cur) == integrity_schema.latest():
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
