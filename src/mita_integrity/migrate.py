"""`migrate`: Alembic over the shipped migration chain, as plain functions that return what happened."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from . import embedded
from .connection import Database, connect
from .errors import DatabaseStateError, UsageError

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
BASELINE = "0021_add_habit_completions"
MITA_CORE_TABLES = ("users", "transactions", "daily_plan", "goals", "subscriptions")


@dataclass(frozen=True)
class Revision:
    """One migration of the chain."""

    id: str
    file_name: str
    down: str | None
    doc: str


@dataclass(frozen=True)
class CurrentState:
    """Where a database stands in the chain."""

    revision: str | None  # None: no alembic_version (empty, or MITA tables without a version)
    has_mita_tables: bool
    head: str

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class MigrationResult:
    """What an upgrade, downgrade or stamp did."""

    action: str
    from_revision: str | None
    to_revision: str | None
    backup: Path | None


def alembic_config() -> Config:
    """Gives the Alembic configuration of the shipped chain."""
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", "mita_integrity:migrations")
    return cfg


def engine_for(db: Database) -> Engine:
    """Gives an SQLAlchemy engine whose connections come from connect() (pooler-safe, UTC)."""
    return sa.create_engine(db.sqlalchemy_url(), creator=lambda: connect(db), poolclass=NullPool)


@contextmanager
def _connection(db: Database) -> Iterator[Connection]:
    engine = engine_for(db)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[Revision]:
    """Gives the chain, oldest first."""
    out = []
    for rev in _script().walk_revisions():
        down = rev.down_revision if isinstance(rev.down_revision, str) or rev.down_revision is None else None
        out.append(Revision(rev.revision, Path(rev.path).stem, down, (rev.doc or "").strip()))
    return list(reversed(out))


def resolve_revision(name: str) -> str:
    """Gives the revision id for a name: an id, a file name (0021_add_habit_completions_table), or a keyword."""
    name = name.strip()
    if name.endswith(".py"):
        name = name[:-3]
    if name in {"head", "heads", "base"} or name.lstrip("+-").isdigit() or "@" in name:
        return name
    chain = revisions()
    for rev in chain:
        if name in (rev.id, rev.file_name):
            return rev.id
    prefixed = [rev.id for rev in chain if rev.id.startswith(name) or rev.file_name.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    known = ", ".join(rev.id for rev in chain)
    raise UsageError(f"unknown revision '{name}'", f"known revisions: {known}, head, base")


def _has_mita_tables(conn: Connection) -> bool:
    found = conn.execute(
        sa.text("SELECT count(*) FROM unnest(CAST(:names AS text[])) AS t(n) "
                "WHERE to_regclass('public.' || n) IS NOT NULL"),
        {"names": list(MITA_CORE_TABLES)},
    ).scalar_one()
    return bool(found)


def _version_in_db(conn: Connection) -> str | None:
    ctx = MigrationContext.configure(conn)
    heads = ctx.get_current_heads()
    return heads[0] if heads else None


def current(db: Database) -> CurrentState:
    """Gives the database's revision; an unknown revision in alembic_version is an error."""
    head = _script().get_current_head() or BASELINE
    with _connection(db) as conn:
        version = _version_in_db(conn)
        has_tables = _has_mita_tables(conn)
    if version is not None and version not in {r.id for r in revisions()}:
        raise DatabaseStateError(
            f"the database is at revision '{version}', which this mita-integrity does not know",
            f"upgrade mita-integrity, or check the alembic_version table (known up to {head})",
        )
    return CurrentState(version, has_tables, head)


def _require_versioned(state: CurrentState, action: str) -> None:
    if state.revision is None and state.has_mita_tables:
        raise DatabaseStateError(
            f"the database has the MITA tables but no alembic_version, so '{action}' cannot know where it stands",
            f"adopt it first: mita-integrity migrate stamp {BASELINE}",
        )


def upgrade(db: Database, target: str = "head", backup: Path | None = None) -> MigrationResult:
    """Upgrades to target (default head), after a pg_dump backup when asked; gives what happened."""
    rev = resolve_revision(target)
    check_backup_path(backup)
    state = current(db)
    _require_versioned(state, "upgrade")
    written = take_backup(db, backup) if backup else None
    _run_command(db, "upgrade", rev)
    return MigrationResult("upgrade", state.revision, current(db).revision, written)


def downgrade(db: Database, target: str, backup: Path | None = None) -> MigrationResult:
    """Downgrades to target (a revision, a file name, -1 or base); gives what happened."""
    rev = resolve_revision(target)
    check_backup_path(backup)
    state = current(db)
    _require_versioned(state, "downgrade")
    if state.revision is None:
        raise DatabaseStateError("the database has no migrations applied; there is nothing to downgrade")
    written = take_backup(db, backup) if backup else None
    _run_command(db, "downgrade", rev)
    return MigrationResult("downgrade", state.revision, current(db).revision, written)


def stamp(db: Database, target: str) -> MigrationResult:
    """Records target in alembic_version without running anything (adopts an existing database)."""
    rev = resolve_revision(target)
    with _connection(db) as conn:
        before = _version_in_db(conn)
    _run_command(db, "stamp", rev, purge=True)
    return MigrationResult("stamp", before, current(db).revision, None)


def _run_command(db: Database, name: str, rev: str, **kwargs: object) -> None:
    cfg = alembic_config()
    try:
        with _connection(db) as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["database"] = db
            getattr(command, name)(cfg, rev, **kwargs)
            conn.commit()
    except CommandError as exc:
        raise UsageError(f"migrate {name} {rev}: {str(exc).splitlines()[0]}") from None
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise DatabaseStateError(
            f"migrate {name} {rev} failed and was rolled back: {first}",
            "nothing of the failed revision was kept; fix the cause and run it again",
        ) from None


def pg_dump_binary(server_major: int) -> Path:
    """Gives a pg_dump able to dump a server of this major version (its own major, or newer)."""
    candidates: list[Path] = [embedded.bin_dir() / "pg_dump"]
    candidates += [Path(f"/usr/lib/postgresql/{major}/bin/pg_dump") for major in range(server_major, 30)]
    found = shutil.which("pg_dump")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        major = _tool_major(path)
        if major is not None and major >= server_major:
            return path
    raise DatabaseStateError(
        f"no pg_dump for PostgreSQL {server_major} was found",
        f"install postgresql-client-{server_major}, or run without --backup",
    )


def _tool_major(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    digits = out.strip().split()[-1].split(".")[0] if out.strip() else ""
    return int(digits) if digits.isdigit() else None


def check_backup_path(path: Path | None) -> None:
    """Raises UsageError, before any work, when a backup could not be written to path."""
    if path is None:
        return
    path = path.expanduser().resolve()
    if path.is_dir():
        raise UsageError(f"cannot write the backup to {path}: it is a folder", "name a file, e.g. before.dump")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write the backup to {path}: the folder does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"cannot write the backup to {path}: the folder is not writable")


def take_backup(db: Database, path: Path) -> Path:
    """Writes a pg_dump -Fc of the database to path; gives the path."""
    check_backup_path(path)
    path = path.expanduser().resolve()
    with connect(db) as conn:
        major = conn.info.server_version // 10000
    params = db.connect_kwargs()
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    from psycopg.conninfo import make_conninfo

    tool = pg_dump_binary(major)
    tmp = path.with_name(path.name + ".partial")
    proc = subprocess.run(
        [str(tool), "-Fc", "--no-password", "-f", str(tmp), "-d", make_conninfo(**params)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise DatabaseStateError(f"the backup with {tool} failed: {reason}", "nothing was migrated")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Validation:
    """One constraint that was NOT VALID, and whether `migrate validate` could validate it."""

    table: str
    name: str
    validated: bool
    reason: str


def validate_pending(db: Database) -> list[Validation]:
    """Validates every NOT VALID constraint of the schema, each in its own transaction (no write lock)."""
    from .online import Online, pending_constraints

    out = []
    with connect(db, autocommit=True) as conn:
        online = Online(conn, say=lambda _line: None)
        for table, name, where in pending_constraints(conn):
            ok = online.validate(table, name, where=where)
            out.append(Validation(table, name, ok, "" if ok else online.pending[-1]))
    return out
