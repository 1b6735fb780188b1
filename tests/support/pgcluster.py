"""A throw-away PostgreSQL cluster in a temporary folder, from any binaries (embedded 16, Debian's 15).

Tests, CI and benchmarks use it: it listens on 127.0.0.1 with a free port, trusts the superuser and
asks every other role for a password (so wrong-password paths can be tested), and is removed on stop.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mita_integrity.database.errors import EmbeddedServerError

SUPERUSER = "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _os_user() -> str | None:
    """Gives the system user to run the server as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "-s", "/bin/sh", "pgserver"], check=True, capture_output=True)
    return "pgserver"


def _open_path_for(path: Path) -> None:
    """Lets other users traverse to path and read/execute below it (for binaries under /root)."""
    for parent in list(path.parents)[::-1] + [path]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            mode = p.stat().st_mode
            extra = stat.S_IROTH | stat.S_IRGRP | (stat.S_IXOTH | stat.S_IXGRP if mode & stat.S_IXUSR else 0)
            if mode & extra != extra:
                p.chmod(mode | extra)


@dataclass
class Cluster:
    """A running temporary cluster."""

    bindir: Path
    datadir: Path
    port: int
    os_user: str | None
    version: str = ""
    _base: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            check=check, capture_output=True, text=True, user=self.os_user,
        )

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def start(self) -> None:
        proc = self.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.datadir / "server.log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir}", "start", check=False,
        )
        if proc.returncode != 0:
            log_file = self.datadir / "server.log"
            log = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
            raise EmbeddedServerError(f"PostgreSQL from {self.bindir} did not start: {proc.stderr.strip()} {log}")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self._base, ignore_errors=True)


def start_cluster(bindir: Path, *, settings: dict[str, str] | None = None) -> Cluster:
    """Gives a running cluster built with initdb from bindir in a new temporary folder."""
    bindir = Path(bindir)
    if not (bindir / "initdb").exists():
        raise EmbeddedServerError(f"no initdb in {bindir}")
    os_user = _os_user()
    if os_user:
        _open_path_for(bindir.parent)
    base = Path(tempfile.mkdtemp(prefix="mita-pg-"))
    datadir = base / "data"
    if os_user:
        entry = pwd.getpwnam(os_user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        base.chmod(0o755)
    cluster = Cluster(bindir=bindir, datadir=datadir, port=_free_port(), os_user=os_user, _base=base)
    init = cluster.run(
        "initdb", "-D", str(datadir), "-U", SUPERUSER, "--encoding=UTF8", "--locale=C",
        "--auth-local=trust", "--auth-host=scram-sha-256", check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise EmbeddedServerError(f"initdb from {bindir} failed: {init.stderr.strip()[-400:]}")
    # The superuser is trusted on loopback; every other role must give its password.
    hba = datadir / "pg_hba.conf"
    hba.write_text(
        "local all all trust\n"
        f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
        "host replication all 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    conf = {
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        "shared_buffers": "256MB", "max_connections": "200", "wal_level": "replica",
        "max_wal_senders": "5", "hot_standby": "on", "log_min_messages": "warning",
    }
    conf.update(settings or {})
    with (datadir / "postgresql.conf").open("a") as fh:
        for key, value in conf.items():
            fh.write(f"{key} = '{value}'\n")
    cluster.start()
    out = cluster.run("postgres", "--version", check=False).stdout.split()
    cluster.version = out[2] if len(out) > 2 else ""
    return cluster


def start_standby(primary: Cluster, *, settings: dict[str, str] | None = None) -> Cluster:
    """Gives a running hot standby of primary: pg_basebackup -R into a new temporary folder, its own port.

    It streams from primary (which trusts replication connections on loopback) and serves read-only
    queries; `settings` go into its postgresql.conf (e.g. max_standby_streaming_delay).
    """
    base = Path(tempfile.mkdtemp(prefix="mita-standby-"))
    if primary.os_user:
        entry = pwd.getpwnam(primary.os_user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        base.chmod(0o755)
    standby = Cluster(bindir=primary.bindir, datadir=base / "data", port=_free_port(), os_user=primary.os_user,
                      version=primary.version, _base=base)
    backup = primary.run(
        "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER, "-D", str(standby.datadir),
        "-R", "-X", "stream", "-c", "fast", check=False,
    )
    if backup.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise EmbeddedServerError(f"pg_basebackup from port {primary.port} failed: {backup.stderr.strip()[-400:]}")
    (standby.datadir / "server.log").unlink(missing_ok=True)  # the primary's log, copied along
    with (standby.datadir / "postgresql.conf").open("a") as fh:
        for key, value in {"hot_standby": "on", **(settings or {})}.items():
            fh.write(f"{key} = '{value}'\n")
    try:
        standby.start()
    except EmbeddedServerError:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return standby
