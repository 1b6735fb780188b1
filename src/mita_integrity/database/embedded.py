"""The embedded PostgreSQL 16 from the pgserver wheel: started on demand, reused while it runs."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from .errors import EmbeddedServerError

EMBEDDED_DATABASE = "mita_demo"


def home() -> Path:
    """Gives the folder that holds the embedded server's data ($MITA_INTEGRITY_HOME or the user data dir)."""
    configured = os.environ.get("MITA_INTEGRITY_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("mita-integrity", appauthor=False))


def bin_dir() -> Path:
    """Gives the folder of the embedded PostgreSQL binaries (postgres, pg_dump, psql…)."""
    _quiet_pgserver_import()
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - pgserver is a dependency
        raise EmbeddedServerError("the pgserver package is not installed", "pip install pgserver") from exc
    return Path(POSTGRES_BIN_PATH)


def _quiet_pgserver_import() -> None:
    """Imports pgserver without its warning about a missing XDG_RUNTIME_DIR (it reads it at import)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def start(pgdata: Path | None = None) -> str:
    """Gives a libpq URL (unix socket) of the embedded server, starting it if it is not running.

    The server is left running when this process exits, so the next command reuses it.
    """
    pgdata = pgdata or home() / "pgdata"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedServerError(
            f"cannot create {pgdata.parent} for the embedded PostgreSQL: {exc.strerror}",
            "set MITA_INTEGRITY_HOME to a writable folder",
        ) from None
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    _quiet_pgserver_import()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(pgdata, cleanup_mode=None)
            uri = server.get_uri()
    except Exception as exc:
        log = pgdata / "log"
        where = f" (server log: {log})" if log.exists() else ""
        raise EmbeddedServerError(
            f"the embedded PostgreSQL did not start: {str(exc).splitlines()[0] if str(exc) else exc!r}{where}",
            "pass --db URL or set DATABASE_URL to use another server",
        ) from None
    return uri


def _runtime_dir() -> Path:
    path = Path("/tmp") / f"mita-integrity-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
