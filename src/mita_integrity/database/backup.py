"""`migrate --backup`: a pg_dump -Fc of the database that the server's own pg_restore reads.

A custom-format dump carries the archive version of the pg_dump that wrote it, and a pg_restore older than
that pg_dump refuses it ("unsupported version (1.15) in file header": pg_dump 16 for a 15 server). So the
dump is made with a pg_dump of the server's own major version where one is installed (pg_config --bindir,
/usr/lib/postgresql/<major>/bin, the embedded server's, the PATH); only when none is, with a newer one, and
the command then says which pg_restore reads the file. An existing file is never replaced without --force,
and pg_dump's wait for its table locks is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from . import embedded
from .connection import Database, connect
from .errors import DatabaseStateError, UsageError

# pg_dump takes ACCESS SHARE on every table it dumps; it waits behind a session holding (or queued for) an
# ACCESS EXCLUSIVE lock (an ALTER TABLE, a DROP, a VACUUM FULL). At most this long, then it gives up.
LOCK_WAIT_SECONDS = int(os.environ.get("MITA_BACKUP_LOCK_WAIT_SECONDS", "30"))


@dataclass(frozen=True)
class DumpTool:
    """The pg_dump chosen for a server, and the pg_restore that reads what it writes."""

    pg_dump: Path
    major: int
    server_major: int

    @property
    def pg_restore(self) -> Path:
        return self.pg_dump.with_name("pg_restore")

    @property
    def matches_server(self) -> bool:
        return self.major == self.server_major


def _candidates(server_major: int) -> list[Path]:
    out: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            bindir = ""
        if bindir:
            out.append(Path(bindir) / "pg_dump")
    out.append(Path(f"/usr/lib/postgresql/{server_major}/bin/pg_dump"))
    out.append(embedded.bin_dir() / "pg_dump")
    found = shutil.which("pg_dump")
    if found:
        out.append(Path(found))
    out += [Path(f"/usr/lib/postgresql/{major}/bin/pg_dump") for major in range(server_major + 1, 30)]
    return out


def dump_tool(server_major: int) -> DumpTool:
    """Gives the pg_dump of the server's major version where one is installed, else the oldest newer one."""
    newer: list[DumpTool] = []
    for path in _candidates(server_major):
        major = _tool_major(path)
        if major == server_major:
            return DumpTool(path, major, server_major)
        if major is not None and major > server_major:
            newer.append(DumpTool(path, major, server_major))
    if newer:
        return min(newer, key=lambda t: t.major)
    raise DatabaseStateError(
        f"no pg_dump for PostgreSQL {server_major} was found",
        f"install postgresql-client-{server_major}, or run without --backup",
    )


def pg_dump_binary(server_major: int) -> Path:
    """Gives the pg_dump dump_tool picks (kept for callers that need only the path)."""
    return dump_tool(server_major).pg_dump


def _tool_major(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    digits = out.strip().split()[-1].split(".")[0] if out.strip() else ""
    return int(digits) if digits.isdigit() else None


def check_backup_path(path: Path | None, *, force: bool = False) -> None:
    """Raises UsageError, before any work, when a backup could not be written to path (or would replace a file
    without force)."""
    if path is None:
        return
    path = path.expanduser().resolve()
    if path.is_dir():
        raise UsageError(f"cannot write the backup to {path}: it is a folder", "name a file, e.g. before.dump")
    if path.exists() and not force:
        raise UsageError(f"the backup file {path} exists already; nothing was changed",
                         "name a new file, or add --force to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write the backup to {path}: the folder does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"cannot write the backup to {path}: the folder is not writable")


@dataclass(frozen=True)
class Backup:
    """A dump that was written: where, by which pg_dump, and the pg_restore that reads it."""

    path: Path
    tool: DumpTool

    def describe(self) -> str:
        restore = f"restore it with {self.tool.pg_restore} (PostgreSQL {self.tool.major})"
        if not self.tool.matches_server:
            restore += (f"; no pg_dump {self.tool.server_major} is installed, so a pg_restore older than "
                        f"{self.tool.major} cannot read it")
        return f"backup written to {self.path} by pg_dump {self.tool.major}; {restore}"


def take_backup(db: Database, path: Path, *, force: bool = False,
                say: Callable[[str], None] | None = None) -> Backup:
    """Writes a pg_dump -Fc of the database to path (through a .partial file, renamed when complete)."""
    check_backup_path(path, force=force)
    path = path.expanduser().resolve()
    with connect(db) as conn:
        major = conn.info.server_version // 10000
    params = db.connect_kwargs()
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    tool = dump_tool(major)
    if say is not None:
        say(f"backup: pg_dump {tool.major} to {path}; it waits at most {LOCK_WAIT_SECONDS} s for a share lock on "
            "each table (behind a session that holds or waits for an exclusive one: an ALTER TABLE, a VACUUM FULL)")
    tmp = path.with_name(path.name + ".partial")
    proc = subprocess.run(
        [str(tool.pg_dump), "-Fc", "--no-password", f"--lock-wait-timeout={LOCK_WAIT_SECONDS}s", "-f", str(tmp),
         "-d", make_conninfo(**params)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()] or ["unknown error"]
        reason = next((line for line in lines if "lock" in line.lower()), lines[-1])
        if "lock" in reason.lower():
            raise DatabaseStateError(
                f"the backup with {tool.pg_dump} gave up after waiting {LOCK_WAIT_SECONDS} s for a share lock "
                f"({reason.removeprefix('pg_dump: error: ')}); nothing was migrated",
                "a session holds or waits for an exclusive lock on that table: find it in pg_locks / "
                "pg_stat_activity, let it finish, then run again")
        raise DatabaseStateError(f"the backup with {tool.pg_dump} failed: {reason}", "nothing was migrated")
    tmp.replace(path)
    return Backup(path, tool)
