"""`migrate --backup`: a pg_dump -Fc of the database, with a pg_dump that can read the server's version."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from psycopg.conninfo import make_conninfo

from . import embedded
from .connection import Database, connect
from .errors import DatabaseStateError, UsageError


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
