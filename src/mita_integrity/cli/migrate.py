"""`mita-integrity migrate …`: Alembic over the shipped chain."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..migration import adopt as migration_adopt
from ..migration import command as migrate
from .app import App, console, note

_REVISION_HELP = ("a revision id, its file name (0022_add_missing_fk_constraints), or -1; never below the baseline "
                  "0021_add_habit_completions (refused)")


class _MigrationLog(logging.Handler):
    """Shows Alembic's 'Running upgrade a -> b' lines as short notes."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Running", "Stamping")) or "upgrade" in message or "downgrade" in message:
            note(f"  {message.strip()}")


@contextmanager
def _migration_log() -> Iterator[None]:
    """Shows the migrations as they run, for the duration of one command."""
    log = logging.getLogger("alembic.runtime.migration")
    handler, level, propagate = _MigrationLog(), log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


@click.group("migrate")
def migrate_group() -> None:
    """Run our migration chain: upgrade, downgrade, current, history, stamp, validate, adopt, export."""


def _backup_option(f: Callable[..., int]) -> Callable[..., int]:
    return click.option(
        "--backup", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        help="Run pg_dump -Fc into FILE before migrating, with the server's own major pg_dump where installed "
             "(its pg_restore reads the file); refuses an existing FILE without --force.",
    )(f)


@migrate_group.command("upgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision", default="head", metavar="[REV]")
@_backup_option
@click.option("--force", is_flag=True, help="Let --backup replace an existing FILE.")
@click.pass_obj
def upgrade_command(app: App, revision: str, backup: Path | None, force: bool) -> int:
    """Upgrade to REV (default head). One migration at a time per database: a second one is refused."""
    with _migration_log():
        result = migrate.upgrade(app.database(), revision, backup=backup, force=force)
    _report(result)
    return 0


@migrate_group.command(
    "downgrade", context_settings={"ignore_unknown_options": True}, help=f"Downgrade to REV: {_REVISION_HELP}."
)
@click.argument("revision", metavar="REV")
@_backup_option
@click.option("--force", is_flag=True,
              help="Let --backup replace an existing FILE, and let 0022's downgrade drop subscriptions.deleted_at "
                   "while subscriptions are soft-deleted (archived first; upgrading to 0022 puts it back).")
@click.pass_obj
def downgrade_command(app: App, revision: str, backup: Path | None, force: bool) -> int:
    with _migration_log():
        result = migrate.downgrade(app.database(), revision, backup=backup, force=force)
    _report(result)
    return 0


@migrate_group.command("validate")
@click.pass_obj
def validate_command(app: App) -> int:
    """Validate every constraint left NOT VALID (online; exit 1 while violators remain)."""
    results = migrate.validate_pending(app.database())
    if not results:
        console.print("Every constraint is validated; nothing to do.", markup=False)
        return 0
    for r in results:
        state = "validated" if r.validated else "NOT VALID"
        console.print(f"  {state:<9}  {r.table}.{r.name}" + ("" if r.validated else
                      f": {r.reason.split('stays NOT VALID: ', 1)[-1]}"), markup=False)
    left = sum(1 for r in results if not r.validated)
    console.print(f"{len(results) - left} validated, {left} still NOT VALID.", markup=False)
    return 1 if left else 0


@migrate_group.command("stamp")
@click.argument("revision", metavar="REV")
@click.pass_obj
def stamp_command(app: App, revision: str) -> int:
    """Record REV in integrity.alembic_version without running it (adopts an existing database)."""
    with _migration_log():
        result = migrate.stamp(app.database(), revision)
    _report(result)
    return 0


@migrate_group.command("current")
@click.pass_obj
def current_command(app: App) -> int:
    """Show the database's revision."""
    state = migrate.current(app.database())
    show_revisions(state)
    return 0


def show_revisions(state: migrate.CurrentState) -> None:
    """Prints where the tool's chain and the application's chain stand."""
    application = state.application or "none (no alembic_version)"
    if state.moved_by_earlier_version:
        console.print(f"mita-integrity: none in integrity.alembic_version; the application's alembic_version holds "
                      f"{state.application}, a revision of this chain: exported into the application's chain, or "
                      "written by an earlier mita-integrity (move it with `mita-integrity migrate adopt`)",
                      markup=False)
    elif state.adoptable:
        console.print("mita-integrity: none yet; the application is at the baseline, so `mita-integrity migrate "
                      "upgrade` adopts the database", markup=False)
    elif state.revision is None and state.has_mita_tables:
        console.print(
            "none: the MITA tables are present but alembic_version is missing; adopt the database with "
            f"`mita-integrity migrate stamp {migrate.BASELINE}`"
        )
    elif state.revision is None:
        console.print("none: an empty database; `mita-integrity migrate upgrade` creates the MITA schema")
    else:
        console.print(f"mita-integrity: {state.revision}{' (head)' if state.at_head else ''}", markup=False)
    console.print(f"application:    {application}", markup=False)


@migrate_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), metavar="DIR")
@click.option("--down-revision", metavar="REV", help="The application's head (default: read with --db).")
@click.pass_obj
def export_command(app: App, directory: Path, down_revision: str | None) -> int:
    """Write the chain after the baseline as revision files of the application's chain (DIR: its versions/)."""
    from ..migration import export as migration_export

    if down_revision is None and not migration_export.exported_in(directory):
        down_revision = migrate.current(app.database()).application
    files = migration_export.export(directory, down_revision)
    for item in files:
        state = "written" if item.written else "kept   "
        console.print(f"  {state}  {item.path}  ({item.down_revision} -> {item.revision})", markup=False)
    written = sum(1 for item in files if item.written)
    console.print(f"{written} written, {len(files) - written} already there; the application's `alembic upgrade "
                  "head` runs them", markup=False)
    return 0


@migrate_group.command("adopt")
@click.pass_obj
def adopt_command(app: App) -> int:
    """Move our revision out of the application's alembic_version into the tool's own version table."""

    moved = migration_adopt.adopt(app.database())
    if moved is None:
        console.print("nothing to move: the application's alembic_version holds no revision of this chain",
                      markup=False)
        return 0
    console.print(f"moved: integrity.alembic_version {moved.revision}; public.alembic_version "
                  f"{moved.application_before} -> {moved.application_after} (no schema change)", markup=False)
    return 0


@migrate_group.command("history")
def history_command() -> int:
    """List the migration chain, oldest first."""
    head = migrate.revisions()[-1].id if migrate.revisions() else None
    for rev in migrate.revisions():
        alias = f" (file {rev.file_name}.py)" if rev.file_name != rev.id else ""
        marker = " (head)" if rev.id == head else ""
        title = rev.doc.splitlines()[0] if rev.doc else ""
        console.print(f"{rev.down or '<base>'} -> {rev.id}{marker}{alias}: {title}")
    return 0


def _report(result: migrate.MigrationResult) -> None:
    if result.backup:
        note(result.backup.describe())
    before = result.from_revision or "<base>"
    after = result.to_revision or "<base>"
    verb = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}[result.action]
    if before == after and result.action != "stamp":
        console.print(f"already at {after}: nothing to do")
    else:
        console.print(f"{verb}: {before} -> {after}")
