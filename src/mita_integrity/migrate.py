"""`migrate`: Alembic over the shipped migration chain, as plain functions that return what happened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from .backup import check_backup_path, take_backup
from .backup import pg_dump_binary as pg_dump_binary  # re-exported: tests pick the tool with it
from .connection import Database, connect
from .errors import DatabaseStateError, UsageError
from .migrate_guards import NEEDS_SESSION as NEEDS_SESSION  # re-exported: the revisions that need a session
from .migrate_guards import require_owner, require_session_for
from .migration_state import application_revision, own_revision
from .seed.plan import MITA_TABLES

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
    application: str | None = None  # the application's own public.alembic_version (only ever read)
    chain: tuple[str, ...] = ()

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    @property
    def adoptable(self) -> bool:
        """The application stands at the baseline and the tool's chain has not recorded anything yet."""
        return self.revision is None and self.has_mita_tables and self.application == BASELINE

    @property
    def moved_by_earlier_version(self) -> bool:
        """Our own revision sits in the application's alembic_version (an earlier mita-integrity, or an export)."""
        return self.revision is None and self.application in self.chain and self.application != BASELINE


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
    return own_revision(conn)  # integrity.alembic_version: the application's table is never ours


def current(db: Database) -> CurrentState:
    """Gives the database's revision; an unknown revision in alembic_version is an error."""
    head = _script().get_current_head() or BASELINE
    with _connection(db) as conn:
        version = _version_in_db(conn)
        has_tables = _has_mita_tables(conn)
        application = application_revision(conn)
    if version is not None and version not in {r.id for r in revisions()}:
        raise DatabaseStateError(
            f"the database is at revision '{version}', which this mita-integrity does not know",
            f"upgrade mita-integrity, or check the alembic_version table (known up to {head})",
        )
    return CurrentState(version, has_tables, head, application, tuple(r.id for r in revisions()))


def _require_versioned(state: CurrentState, action: str) -> None:
    if state.moved_by_earlier_version:
        raise DatabaseStateError(
            f"the application's alembic_version holds {state.application}, a revision of mita-integrity's chain, "
            f"so '{action}' cannot tell where the chain stands; nothing was changed",
            "if an earlier mita-integrity wrote it, move it to the tool's own table: mita-integrity migrate adopt; "
            "if the chain was exported into the application's, run the application's alembic instead",
        )
    if state.adoptable and action == "upgrade":
        return
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
    _require(db, "upgrade", state.revision, rev, backup)
    written = take_backup(db, backup) if backup else None
    state = _adopt(db, state)
    _run_command(db, "upgrade", rev)
    return MigrationResult("upgrade", state.revision, current(db).revision, written)


def _adopt(db: Database, state: CurrentState) -> CurrentState:
    """Records the baseline in the tool's own table for a database the application's chain brought to 0021."""
    if not state.adoptable:
        return state
    _run_command(db, "stamp", BASELINE)
    return current(db)


def downgrade(db: Database, target: str, backup: Path | None = None) -> MigrationResult:
    """Downgrades to target (a revision, a file name, -1 or base); gives what happened."""
    rev = resolve_revision(target)
    check_backup_path(backup)
    state = current(db)
    _require_versioned(state, "downgrade")
    if state.revision is None:
        raise DatabaseStateError("the database has no migrations applied; there is nothing to downgrade")
    _require(db, "downgrade", state.revision, rev, backup)
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


def steps_between(action: str, here: str | None, target: str) -> list[str]:
    """Gives the revisions an upgrade/downgrade from here to target runs, as Alembic would run them."""
    moves = {"upgrade": _script()._upgrade_revs, "downgrade": _script()._downgrade_revs}
    try:
        return [step.revision.revision for step in moves[action](target, here or "base")]
    except (CommandError, RevisionError):
        return []  # Alembic refuses the move itself, before running anything


def _require(db: Database, action: str, here: str | None, target: str, backup: Path | None) -> None:
    """Refuses, before anything is done, a move the connection or the role cannot carry through."""
    steps = steps_between(action, here, target)
    require_session_for(db, action, target, steps, backup)
    require_owner(db, action, target, steps, MITA_TABLES)


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
