"""The `integrity` schema's versions: its own version table and the ordered upgrade steps, in this one module.

The tool keeps its run history, the archive of repaired rows, the findings and the alert outbox in the
schema `integrity` of the MITA database. Its shape is versioned apart from the MITA chain (whose state is
integrity.alembic_version, Alembic's): `integrity.schema_version` holds one row per step applied, and the
schema's version is the highest. The first write of any command (store.ensure) upgrades in place, in one
transaction under an advisory lock, so two first writers never both upgrade and a failed upgrade leaves
the schema as it was. Reading never upgrades; a reader meeting a schema newer than this code refuses in one
line (exit 3) instead of misreading it.

Step 1 adopts the tables as every earlier mita-integrity created them (IF NOT EXISTS, data kept): on a
database that has them it only records version 1.

To change the schema, add ONE line to STEPS — never edit a step that has shipped:

    Step(2, "runs.note", ("ALTER TABLE integrity.runs ADD COLUMN IF NOT EXISTS note text",)),

Write each statement so that it can run again (IF NOT EXISTS, ADD COLUMN IF NOT EXISTS …): docs/roles.sql
replays every step for the owner (tests/test_roles.py keeps it equal to STEPS, with the version row), and a
database created by hand may already have some of it. `python -m mita_integrity.runs.integrity_schema` prints the
statements for section 5 of docs/roles.sql; grants for a new table go into its section 6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

from ..database.connection import transaction
from ..database.errors import DatabaseStateError

SCHEMA = "integrity"
VERSION_TABLE = f"{SCHEMA}.schema_version"
LOCK_KEY = 7_416_902_211  # any constant: serialises upgrades (the same key the unversioned creation used)


@dataclass(frozen=True)
class Step:
    """One upgrade of the integrity schema: its version, a name, its statements (run in one transaction)."""

    version: int
    name: str
    statements: tuple[str, ...]


# The version table itself: created before step 1, by the first upgrade (and by docs/roles.sql).
VERSION_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL DEFAULT current_user)""",
)

# Step 1: the tables exactly as earlier releases created them, unversioned (store.DDL until this module).
ADOPT = (
    # recorded_at: the database's clock, for schedulers.
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
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
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
)

# Step 2: what a recorded check keeps for the next `check --incremental` (check/incremental/): its snapshot and
# tables (check_bases), and per result its count and every violating row's key (check_base_results.keys: the
# text of the primary key). Both cascade from integrity.runs, so they are pruned with the run.
INCREMENTAL_BASES = (
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
)

# Step 3: the change log of old keys (change_log.py): what an update or delete took away from a grouping key of
# transactions or daily_plan, written by the triggers `changelog install` adds (none are added here), and the
# bound below which a recorded check pruned it. `txid` is the writing transaction's top-level id (xid8: no
# wraparound), `tbl` 't' (transactions) or 'p' (daily_plan).
CHANGE_LOG = (
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.change_log (
        txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        tbl "char" NOT NULL,
        pk uuid NOT NULL,
        user_id uuid,
        at timestamptz,
        category text)""",
    f"CREATE INDEX IF NOT EXISTS change_log_txid_idx ON {SCHEMA}.change_log (txid)",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.change_log_pruned (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        below xid8 NOT NULL)""",
)

# The ordered upgrade steps. Append; never edit or reorder a shipped one (see the module's docstring).
STEPS: tuple[Step, ...] = (
    Step(1, "adopt the unversioned tables (runs, archive, run_results, findings, alert_outbox)", ADOPT),
    Step(2, "the bases of incremental checks: check_bases, check_base_results", INCREMENTAL_BASES),
    Step(3, "the change log of old keys: change_log, change_log_pruned", CHANGE_LOG),
)

# Not in the steps, and why: integrity.alembic_version is the MITA chain's state, created and widened by
# `migrate` (migration_state.py) as Alembic's version table; integrity.subscriptions_deleted_at is written by
# migration 0022's downgrade, which is frozen (migrations/frozen).


def latest() -> int:
    """Gives the version this code upgrades to (and reads)."""
    return STEPS[-1].version


def record_sql(step: Step) -> str:
    """Gives the statement that records a step as applied (idempotent: docs/roles.sql replays it)."""
    name = step.name.replace("'", "''")
    return (f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ({int(step.version)}, '{name}') "
            "ON CONFLICT (version) DO NOTHING")


def script() -> list[str]:
    """Gives every statement that brings an empty database to latest(): what docs/roles.sql carries."""
    out = list(VERSION_DDL)
    for step in STEPS:
        out += [*step.statements, record_sql(step)]
    return out


def state(cur: psycopg.Cursor[Any]) -> tuple[bool, bool]:
    """Gives (the version table exists, the role may read it), from the catalog: needs no privilege."""
    cur.execute("SELECT c.oid IS NOT NULL, coalesce(has_schema_privilege(n.oid, 'USAGE') "
                "AND has_table_privilege(c.oid, 'SELECT'), false) FROM (SELECT 1) x "
                "LEFT JOIN pg_namespace n ON n.nspname = %s "
                "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'schema_version'", (SCHEMA,))
    row = cur.fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


def current(cur: psycopg.Cursor[Any]) -> int | None:
    """Gives the schema's version: None without a version table (no schema, or the tables of releases before
    versioning), 0 with an empty one. A version table the role may not read counts as absent."""
    exists, readable = state(cur)
    if not (exists and readable):
        return None
    cur.execute(f"SELECT max(version) FROM {VERSION_TABLE}")
    found = cur.fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def refuse_newer(cur: psycopg.Cursor[Any]) -> None:
    """Raises one clear error when the schema is newer than this code knows: its tables may mean other things."""
    version = current(cur)
    if version is not None and version > latest():
        raise DatabaseStateError(
            f"the integrity schema is at version {version}, newer than this mita-integrity knows ({latest()}); "
            "nothing was read or changed",
            "upgrade mita-integrity to the release that wrote it (pip install -U mita-integrity)")


def upgrade(conn: psycopg.Connection[Any]) -> int:
    """Brings the schema to latest() in place (its own transaction, under the advisory lock); gives the steps
    applied. Nothing is executed when it is there already, so a role without CREATE can write."""
    with transaction(conn, lock_timeout_ms=5_000, statement_timeout_ms=60_000) as cur:
        refuse_newer(cur)
        if current(cur) == latest():
            return 0
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        refuse_newer(cur)  # another writer may have upgraded while this one waited
        here = current(cur)
        if here == latest():
            return 0
        if here is None and state(cur)[0]:
            raise DatabaseStateError(f"cannot read {VERSION_TABLE}: the role lacks SELECT on it; nothing was changed",
                                     "grant it (docs/roles.sql), or run this command as the owner of the MITA tables")
        if here is None:
            _run(cur, VERSION_DDL)
        applied = 0
        for step in STEPS:
            if step.version > (here or 0):
                _run(cur, step.statements)
                cur.execute(record_sql(step).encode())
                applied += 1
        return applied


_CREATES = re.compile(r"^CREATE (?:SCHEMA|TABLE|INDEX) IF NOT EXISTS (?:\w+\.)?(\w+)")


def _run(cur: psycopg.Cursor[Any], statements: tuple[str, ...]) -> None:
    """Runs statements, skipping a CREATE … IF NOT EXISTS of an object that is there: IF NOT EXISTS still asks
    for CREATE on the schema (and an index for owning its table), which the owner's tables need not grant."""
    for statement in statements:
        made = _CREATES.match(statement)
        if made:
            cur.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(s)s AND %(o)s = %(s)s) OR "
                        "EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %(s)s AND c.relname = %(o)s)", {"s": SCHEMA, "o": made.group(1)})
            row = cur.fetchone()
            if row and row[0]:
                continue
        cur.execute(statement.encode())


if __name__ == "__main__":
    print(";\n".join(script()) + ";")
