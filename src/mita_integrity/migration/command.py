"""`migrate`: Alembic over the shipped migration chain, as plain functions that return what happened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from psycopg import sql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from ..database.backup import Backup, check_backup_path, take_backup
from ..database.backup import pg_dump_binary as pg_dump_binary  # re-exported: tests pick the tool with it
from ..database.chain_state import OWN, OWN_SCHEMA, OWN_TABLE, VERSION_WIDTH, application_revision, own_revision
from ..database.connection import Database, connect, pin_settings
from ..database.errors import ConnectionLost, DatabaseStateError, MitaIntegrityError, UsageError, is_connection_lost
from ..migrations.frozen.kit_v1 import say
from ..migrations.frozen.online_v1 import MigrationRefused
from ..wording import counted
from .guards import NEEDS_SESSION as NEEDS_SESSION  # re-exported: the revisions that need a session
from .guards import one_migration_at_a_time, require_above_floor, require_owner, require_session_for
from .leftovers import finish_leftovers

ALEMBIC_INI = Path(__file__).parents[1] / "alembic.ini"
BASELINE = "0021_add_habit_completions"
# The tables of the baseline (migrations/sql/0021_add_habit_completions.sql), which the migrations alter: the
# role that runs them must own them. The chain's own list, not the seed generator's (tests keep them equal).
MITA_TABLES: tuple[str, ...] = (
    "habit_completions", "user_profiles", "user_answers", "notification_logs", "expenses", "budget_advice",
    "ai_advice_templates", "installment_achievements", "installment_calculations", "user_financial_profiles",
    "notifications", "paywall_impression_logs", "feature_access_logs", "feature_usage_logs",
    "challenge_participations", "push_tokens", "moods", "ai_analysis_snapshots", "subscriptions", "daily_plan",
    "transactions", "installments", "habits", "goals", "challenges", "users",
)
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
    backup: Backup | None


def alembic_config() -> Config:
    """Gives the Alembic configuration of the shipped chain."""
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", "mita_integrity:migrations")
    return cfg


def engine_for(db: Database) -> Engine:
    """Gives an SQLAlchemy engine whose connections come from connect() (pooler-safe, UTC).

    Every transaction begins with the tool's settings SET LOCAL (connection.SESSION_SETTINGS): behind a
    transaction pooler the session ones from connect() may be on another server connection.

    No rollback when a connection goes back to the pool: NullPool closes it at once, and the server rolls back
    what a closed session left open. A rollback there on a connection the server ended (a restart while the
    settings were pinned, an error SQLAlchemy never saw) only failed again, and the pool logged that failure
    with its traceback on stderr, above the one-line error (CI, stop 26).
    """
    engine = sa.create_engine(db.sqlalchemy_url(), creator=lambda: connect(db), poolclass=NullPool,
                              pool_reset_on_return=None)

    @sa.event.listens_for(engine, "begin")
    def _pin(conn: Connection) -> None:
        with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
            pin_settings(cur, local=True)

    return engine


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


def upgrade(db: Database, target: str = "head", backup: Path | None = None, *, force: bool = False) -> MigrationResult:
    """Upgrades to target (default head), after a pg_dump backup when asked; gives what happened.

    force: let --backup replace an existing file.
    """
    rev = resolve_revision(target)
    check_backup_path(backup, force=force)
    with one_migration_at_a_time(db, f"migrate upgrade {target}"):
        state = current(db)
        _require_versioned(state, "upgrade")
        steps = _require(db, "upgrade", state.revision, rev, backup)
        written = take_backup(db, backup, force=force, say=say) if backup else None
        state = _adopt(db, state, f"migrate upgrade {target}")
        finish_leftovers(db, state.revision)
        here = _finish_interrupted_downgrade(db, state.revision, rev)
        if here != state.revision or steps[:1] == [BASELINE]:  # a part-undone step, or a database just adopted
            steps = steps_between("upgrade", here, rev)
        _run_command(db, "upgrade", rev, steps=steps, label=f"migrate upgrade {target}")
        mark_downgrade(db, None)
        return MigrationResult("upgrade", state.revision, current(db).revision, written)


def _adopt(db: Database, state: CurrentState, label: str) -> CurrentState:
    """Records the baseline in the tool's own table for a database the application's chain brought to 0021."""
    if not state.adoptable:
        return state
    _run_command(db, "stamp", BASELINE, steps=[], label=label)
    return current(db)


def downgrade(db: Database, target: str, backup: Path | None = None, *, force: bool = False) -> MigrationResult:
    """Downgrades to target (a revision, a file name or -N; never below the baseline); gives what happened.

    force: let --backup replace an existing file, and let 0022's downgrade drop subscriptions.deleted_at
    while subscriptions are soft-deleted (their deleted_at is archived first and restored by 0022's upgrade).
    """
    require_above_floor("downgrade", target.strip(), None)
    rev = resolve_revision(target)
    check_backup_path(backup, force=force)
    with one_migration_at_a_time(db, f"migrate downgrade {target}"):
        state = current(db)
        _require_versioned(state, "downgrade")
        if state.revision is None:
            raise DatabaseStateError("the database has no migrations applied; there is nothing to downgrade")
        steps = steps_between("downgrade", state.revision, rev)
        require_above_floor("downgrade", rev, steps)
        _require(db, "downgrade", state.revision, rev, backup)
        if "0022_add_missing_fk_constraints" in steps and not force:
            _refuse_dropping_soft_deletes(db, target)
        written = take_backup(db, backup, force=force, say=say) if backup else None
        finish_leftovers(db, state.revision)
        if steps:
            mark_downgrade(db, f"{state.revision} -> {rev}")
        _run_command(db, "downgrade", rev, steps=steps, label=f"migrate downgrade {target}")
        mark_downgrade(db, None)
        return MigrationResult("downgrade", state.revision, current(db).revision, written)


# A downgrade in progress is written on the chain's version table, integrity.alembic_version (a table comment),
# until it completes. A killed downgrade stops in the middle of the recorded revision R (Alembic moves the version
# only after R's body completed), so the next upgrade finds the mark and runs R's upgrade again — each does only
# what is missing — before going on.
_MARK = "mita-integrity: downgrade in progress: "
_OWN_TABLE = sql.Identifier(OWN_SCHEMA, OWN_TABLE)


def mark_downgrade(db: Database, move: str | None) -> None:
    """Writes (or, with None, clears) the in-progress mark of a downgrade."""
    # Names are schema-qualified here: behind a transaction pooler these statements may run on a server
    # connection whose search_path another client changed (connect() pins it only on the first one).
    with connect(db) as conn:
        if move is None:
            row = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (OWN,)).fetchone()
            if not (row and row[0] and str(row[0]).startswith(_MARK)):
                return
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS NULL").format(_OWN_TABLE))
        else:
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_OWN_TABLE, sql.Literal(_MARK + move)))
        conn.commit()


def _finish_interrupted_downgrade(db: Database, here: str | None, target: str) -> str | None:
    """Gives where the upgrade starts: one revision lower than recorded when a downgrade of it was cut short."""
    with connect(db) as conn:
        row = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (OWN,)).fetchone()
    mark = str(row[0]) if row and row[0] else ""
    if not mark.startswith(_MARK) or here in (None, BASELINE):
        return here
    down = next((r.down for r in revisions() if r.id == here), None)
    if down is None or here not in steps_between("upgrade", down, target):
        return here
    say(f"  an interrupted downgrade ({mark.removeprefix(_MARK)}) left {here} part undone: running its upgrade "
        "again (it does only what is missing)")
    with connect(db) as conn:
        conn.execute(sql.SQL("UPDATE {} SET version_num = %s WHERE version_num = %s").format(_OWN_TABLE), (down, here))
        conn.commit()
    return down


def _refuse_dropping_soft_deletes(db: Database, target: str) -> None:
    """0022's downgrade drops subscriptions.deleted_at: soft-deleted subscriptions would become live."""
    with connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
                           "AND table_name = 'subscriptions' AND column_name = 'deleted_at'").fetchone()
        if not (row and row[0]):
            return
        row = conn.execute("SELECT count(*) FROM public.subscriptions WHERE deleted_at IS NOT NULL").fetchone()
    soft = int(row[0]) if row else 0
    if soft:
        raise UsageError(
            f"migrate downgrade {target}: 0022's downgrade drops subscriptions.deleted_at, and "
            f"{counted(soft, 'subscription')} {'is' if soft == 1 else 'are'} soft-deleted and would read as live; "
            "nothing was changed",
            "add --force to go on: their deleted_at is archived in integrity.subscriptions_deleted_at first, and "
            "upgrading to 0022 again puts it back",
        )


def stamp(db: Database, target: str) -> MigrationResult:
    """Records target in the chain's version table, integrity.alembic_version, without running anything.

    One transaction: it succeeds, or the version table is left as it was (the application's alembic_version
    is never written). A revision id longer than an older, narrower table's version_num widens it first.
    """
    rev = resolve_revision(target)
    with one_migration_at_a_time(db, f"migrate stamp {target}"):
        require_owner(db, "stamp", target, ["stamp"], ("alembic_version",))
        cfg = alembic_config()
        with _connection(db) as conn:
            before = _version_in_db(conn)
            conn.rollback()
            try:
                with conn.begin():  # Alembic sees a transaction of ours and leaves committing to it
                    _widen_version_num(conn, rev)
                    cfg.attributes["connection"] = conn
                    cfg.attributes["database"] = db
                    command.stamp(cfg, rev, purge=True)
            except CommandError as exc:
                raise UsageError(f"migrate stamp {target}: {str(exc).splitlines()[0]}; nothing was changed") from None
            except sa.exc.DBAPIError as exc:
                raise DatabaseStateError(f"migrate stamp {target} failed: {_first_line(exc)}",
                                         "it was rolled back: integrity.alembic_version is as it was") from None
    return MigrationResult("stamp", before, current(db).revision, None)


def _widen_version_num(conn: Connection, rev: str) -> None:
    """Widens the chain's version table, if an older one is narrower than the id it is to hold (created, it is wide
    enough already)."""
    ids = [r.id for r in revisions()] if rev in {"head", "heads"} else [rev]
    longest = max((len(i) for i in ids), default=0)
    width = conn.execute(sa.text(
        "SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = :s "
        "AND table_name = :t AND column_name = 'version_num'"), {"s": OWN_SCHEMA, "t": OWN_TABLE}).scalar()
    if width is not None and longest > int(width):
        conn.execute(sa.text(f"ALTER TABLE {OWN} ALTER COLUMN version_num TYPE varchar({VERSION_WIDTH})"))


def steps_between(action: str, here: str | None, target: str) -> list[str]:
    """Gives the revisions an upgrade/downgrade from here to target runs, as Alembic would run them."""
    moves = {"upgrade": _script()._upgrade_revs, "downgrade": _script()._downgrade_revs}
    try:
        return [step.revision.revision for step in moves[action](target, here or "base")]
    except (CommandError, RevisionError):
        return []  # Alembic refuses the move itself, before running anything


def _require(db: Database, action: str, here: str | None, target: str, backup: Path | None) -> list[str]:
    """Refuses, before anything is done, a move the connection or the role cannot carry through; gives its steps."""
    steps = steps_between(action, here, target)
    require_session_for(db, action, target, steps, backup)
    require_owner(db, action, target, steps, MITA_TABLES)
    return steps


def _first_line(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]


def _run_command(db: Database, name: str, rev: str, *, steps: list[str], label: str) -> None:
    """Runs an Alembic command; a failure names the step that was running, what was completed and kept."""
    cfg = alembic_config()
    done: list[str] = []
    cfg.attributes["applied"] = done
    try:
        with _connection(db) as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["database"] = db
            getattr(command, name)(cfg, rev)
            conn.commit()
    except CommandError as exc:
        raise UsageError(f"{label}: {str(exc).splitlines()[0]}") from None
    except ConnectionLost as exc:  # e.g. from a clean-up's check: its own "nothing was changed" is not ours to say
        raise _interrupted(label, steps, done, exc.message.split(";")[0], _rerun(label, "once the server accepts "
                                                                                "connections again")) from None
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        first = _first_line(exc) if isinstance(exc, sa.exc.DBAPIError) else str(exc).strip().splitlines()[0]
        if isinstance(orig, psycopg.Error) and is_connection_lost(orig):
            raise _interrupted(label, steps, done, f"lost the connection to the database ({first})",
                               _rerun(label, "once the server accepts connections again")) from None
        raise _interrupted(label, steps, done, f"failed: {first}", _rerun(label, "after fixing the cause")) from None
    except (MitaIntegrityError, MigrationRefused) as exc:
        raise _interrupted(label, steps, done, exc.message, exc.hint or _rerun(label, "after fixing the cause")) \
            from None


def _rerun(label: str, when: str) -> str:
    return f"re-run `mita-integrity {label}` {when}: it continues where it stopped"


def _interrupted(label: str, steps: list[str], done: list[str], what: str, hint: str) -> MitaIntegrityError:
    """Gives the one-line error of a migrate command stopped in the middle of its steps: the command, the revision
    that was running, what was completed and kept."""
    running = steps[len(done)] if len(done) < len(steps) else None
    where = f" in {running}" if running else ""
    kept = (f"completed and kept: {', '.join(done)} (recorded in integrity.alembic_version)" if done
            else "no revision was completed")
    partial = (f"; {running} is not recorded, the steps of it that finished are kept (each commits on its own)"
               if running and running != BASELINE else "")
    error_type = ConnectionLost if what.startswith("lost the connection") else DatabaseStateError
    return error_type(f"{label}{where}: {what}; {kept}{partial}", hint)


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
