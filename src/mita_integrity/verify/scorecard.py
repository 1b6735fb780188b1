"""`verify`: the seed's success metrics as a scorecard — one line per metric, pass or fail, with evidence.

Reads run in read-only transactions; the probes (cascade, unique key, spent trigger) write inside one
transaction each that is always rolled back, under lock_timeout 2s and a statement_timeout. verify never
creates the integrity schema and never leaves a row behind. A line that cannot be computed (a privilege,
a lock) fails with its reason; the other lines still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from ..check.rules.context import Schema, load_schema
from ..check.rules.expected import USER_FK_TABLES_0026
from ..check.rules.references import user_id_tables
from ..check.run import CheckRequest, parse_duration, run_check
from ..database.connection import CATALOG_SEARCH_PATH, Database, connect, pin_settings, transaction
from ..database.errors import UsageError
from ..database.own_version import readable_own_revision
from ..findings import Report, Status
from ..wording import counted
from . import probe_rows, probes
from .reads import checks, invalid_indexes, orphan_counts, orphans, percentage, recent, trigger_catalog, unique_catalog

DEFAULT_MAX_AGE = "26h"
FKS_0022 = ("fk_daily_plan_user_id", "fk_subscriptions_user_id")
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
READ_MS, PROBE_STATEMENT, PROBE_LOCK = 300_000, "60s", "2s"


@dataclass(frozen=True)
class Line:
    name: str
    passed: bool
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "evidence": self.evidence}


@dataclass(frozen=True)
class Scorecard:
    lines: tuple[Line, ...]

    @property
    def passed(self) -> bool:
        return all(line.passed for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "lines": [line.to_json() for line in self.lines]}


def parse_max_age(text: str) -> int:
    """Gives the seconds of --max-age (26h, 2d, 90m…); raises UsageError otherwise."""
    try:
        return parse_duration(text)
    except UsageError:
        raise UsageError(f"--max-age {text!r} is not a duration", "write a number and a unit: 30m, 26h, 2d") from None


def run_verify(db: Database, max_age_seconds: int = 26 * 3600) -> Scorecard:
    """Gives the scorecard; raises MitaIntegrityError only when the database cannot be worked with at all."""
    report = run_check(db, CheckRequest(select=("DUP002", "SCH009"), sample=20))
    conn = connect(db)
    try:
        with transaction(conn, read_only=True, statement_timeout_ms=READ_MS) as cur:
            schema = load_schema(cur)
            columns = probe_rows.load_columns(cur)
            own = readable_own_revision(cur)
        uuid_tables = user_id_tables(schema, uuid=True)
        references = _read(conn, "orphans", lambda cur: (True, orphan_counts(cur, schema)))
        lines = [
            _from(references, "orphans", orphans),
            _fks_0022(schema),
            _user_fks(schema, uuid_tables),
            Line("cascade-probe", *_probed(conn, lambda c: probes.cascade(c, schema, columns, uuid_tables))),
            _results_line("calendar-duplicates", report, "DUP002", "0 duplicate (user, day, category) keys"),
            _unique(conn, schema, columns),
            _read(conn, "checks-0024", lambda cur: checks(cur, schema)),
            _trigger(conn, schema, columns),
            _from(references, "referential-integrity", percentage),
            _read(conn, "recent-check", lambda cur: recent(cur, max_age_seconds)),
            _stamped(report, _read(conn, "migrations-applied", lambda cur: (True, invalid_indexes(cur))), own),
        ]
    finally:
        conn.rollback()
        conn.close()
    return Scorecard(tuple(lines))


def _read(conn: psycopg.Connection[Any], name: str, compute: Callable[[Any], tuple[bool, Any]]) -> Any:
    """One line computed in its own read-only transaction; a database error fails only this line.

    Gives a Line when compute gives (passed, evidence text), else (passed, value) for lines judged later.
    """
    try:
        with transaction(conn, read_only=True, statement_timeout_ms=READ_MS, lock_timeout_ms=5_000) as cur:
            # The tool's own reads (tables named public."…"): no function or operator of public may answer them.
            cur.execute(f"SET LOCAL search_path = {CATALOG_SEARCH_PATH}")
            passed, evidence = compute(cur)
    except psycopg.Error as exc:
        conn.rollback()
        return Line(name, False, f"could not check: {probe_rows.reason(exc)}")
    return Line(name, passed, evidence) if isinstance(evidence, str) else (passed, evidence)


def _probed(conn: psycopg.Connection[Any],
            run: Callable[[psycopg.Connection[Any]], probes.ProbeResult]) -> tuple[bool, str]:
    """Runs a probe in a fresh transaction of conn (which must be idle) and always rolls it back."""
    conn.rollback()
    try:
        with conn.cursor() as cur:  # opens the transaction: the probe's savepoints live inside it
            pin_settings(cur, local=True)
            cur.execute(f"SET LOCAL lock_timeout = '{PROBE_LOCK}'")
            cur.execute(f"SET LOCAL statement_timeout = '{PROBE_STATEMENT}'")
        result = run(conn)
        return result.passed, result.evidence
    except probe_rows.ProbeError as exc:
        return False, str(exc)
    except psycopg.errors.LockNotAvailable:
        return False, f"cannot probe: a lock was not granted within {PROBE_LOCK} (a busy table); try again"
    except psycopg.Error as exc:
        return False, f"cannot probe: {probe_rows.reason(exc)}"
    finally:
        conn.rollback()


def _from(shared: Line | tuple[bool, Any], name: str, judge: Callable[[Any], tuple[bool, str]]) -> Line:
    """A line judged from a read shared with another line (a failed read fails both, with its reason)."""
    if isinstance(shared, Line):
        return Line(name, False, shared.evidence)
    return Line(name, *judge(shared[1]))


def _results_line(name: str, report: Report, code: str, clean: str) -> Line:
    results = [r for r in report.results if r.code == code]
    bad = [r for r in results if r.failed or r.status is Status.ERROR]
    if bad:
        return Line(name, False, "; ".join(
            f"{r.table}: {r.reason}" if r.status is Status.ERROR
            else f"{r.count:,} surplus rows in {r.groups or 0:,} duplicated keys" for r in bad))
    guaranteed = [r.reason for r in results if r.status is Status.GUARANTEED and r.reason]
    skipped = [r.reason for r in results if r.status is Status.SKIPPED and r.reason]
    return Line(name, True, "; ".join([clean, *guaranteed, *(f"skipped: {s}" for s in skipped)]))


def _user_fk(schema: Schema, table: str) -> list[Any]:
    return [c for c in schema.constraints if c.kind == "f" and c.table == table and c.columns == ("user_id",)
            and c.ref_table == "users"]


def _fks_0022(schema: Schema) -> Line:
    problems, good = [], []
    for name in FKS_0022:
        con = next((c for c in schema.constraints if c.name == name and c.kind == "f"), None)
        if con is None:
            problems.append(f"{name} missing")
        elif not con.validated:
            problems.append(f"{name} NOT VALID")
        else:
            good.append(f"{name} ({ON_DELETE.get(con.on_delete, con.on_delete)})")
    if problems:
        return Line("fk-0022", False, "; ".join(problems))
    return Line("fk-0022", True, f"{', '.join(good)}: present and validated")


def _user_fks(schema: Schema, uuid_tables: list[str]) -> Line:
    missing: list[str] = []
    weak: list[str] = []
    invalid: list[str] = []
    tables = sorted(set(uuid_tables) | set(USER_FK_TABLES_0026))
    for table in tables:
        if not schema.has(table):
            missing.append(f"{table} (no such table)")
            continue
        fks = _user_fk(schema, table)
        if not fks:
            missing.append(table)
        elif not any(c.on_delete == "c" for c in fks):
            weak.extend(f"{c.name} ({ON_DELETE.get(c.on_delete, c.on_delete)})" for c in fks)
        elif not any(c.on_delete == "c" and c.validated for c in fks):
            invalid.extend(c.name for c in fks if c.on_delete == "c")
    parts = [f"{label}: {', '.join(items)}" for label, items in (
        ("no FK to users", missing), ("not ON DELETE CASCADE", weak), ("NOT VALID", invalid)) if items]
    if parts:
        return Line("user-fk-cascade", False, "; ".join(parts))
    return Line("user-fk-cascade", True, f"{len(tables)} uuid user_id columns: validated FK, ON DELETE CASCADE")


def _unique(conn: psycopg.Connection[Any], schema: Schema, columns: dict[str, Any]) -> Line:
    catalog = _read(conn, "calendar-unique", lambda cur: unique_catalog(cur, schema))
    passed, evidence = _probed(conn, lambda c: probes.unique(c, schema, columns))
    return Line(catalog.name, catalog.passed and passed, f"{catalog.evidence}; {evidence}")


def _trigger(conn: psycopg.Connection[Any], schema: Schema, columns: dict[str, Any]) -> Line:
    catalog = _read(conn, "spent-trigger", trigger_catalog)
    if not catalog.passed:
        return catalog
    passed, evidence = _probed(conn, lambda c: probes.spent_trigger(c, schema, columns))
    return Line(catalog.name, passed, f"{catalog.evidence}; {evidence}")


def _stamped(report: Report, invalid: Line | tuple[bool, list[str]], own: str | None = None) -> Line:
    """migrations-applied: every recorded migration's objects present (SCH009), and no index left invalid.

    own: the tool's chain revision (integrity.alembic_version), when the chain runs standalone.
    """
    if isinstance(invalid, Line):
        return invalid
    results = [r for r in report.results if r.code == "SCH009"]
    revision = report.database.alembic_revision
    # Standalone, the chain's state is the tool's own table; exported, it is the application's.
    recorded = f"integrity.alembic_version {own}" if own else f"alembic_version {revision}"
    bad = [r for r in results if r.failed or r.status is Status.ERROR]
    problems = []
    if bad:
        detail = "; ".join(r.reason or "" if r.status is Status.ERROR else ", ".join(r.sample) for r in bad)
        problems.append(f"{sum(r.count for r in bad)} objects missing: {detail}")
    if invalid[1]:
        problems.append(f"{counted(len(invalid[1]), 'invalid index')} (a concurrent build cut short; it enforces "
                        f"nothing): {', '.join(invalid[1])}; `mita-integrity migrate upgrade head` drops and rebuilds "
                        "the migrations' own")
    if problems:
        return Line("migrations-applied", False, f"{recorded} but " + "; and ".join(problems))
    if revision is None and own is None:
        return Line("migrations-applied", True, "no alembic_version: nothing recorded, nothing missing")
    return Line("migrations-applied", True, f"{recorded}: every recorded migration's objects present")
