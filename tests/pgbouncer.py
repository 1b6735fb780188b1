"""A throw-away PgBouncer in transaction pooling mode in front of the test server, like Supabase's pooler.

It listens on a free port of 127.0.0.1 and asks a dotted user name (``postgres.<ref>``) for its password
(SCRAM), with a small pool so that clients really share server connections. PgBouncer refuses to run as
root, so as root it runs as the test cluster's system user. Missing /usr/sbin/pgbouncer skips the tests,
unless MITA_TEST_REQUIRE_PGBOUNCER=1 (CI), which fails them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import sql

from mita_integrity.database.connection import Database, connect

BINARY = Path(os.environ.get("MITA_TEST_PGBOUNCER", "/usr/sbin/pgbouncer"))
USER = "postgres.atdcxppfflmiwjwjuqyl"  # as Supabase's pooler spells it: role.project-ref
PASSWORD = "s3cr:t/p@ss%w#rd"  # URL-encoded in every URL: ':' '/' '@' '%' '#'
POOL_SIZE = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """A running pgbouncer: the URL of a database through it, and the server it stands in front of."""

    def __init__(self, server: Database, os_user: str | None) -> None:
        self.server = server
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="mita-pgbouncer-"))
        params = server.parsed.params
        quoted_password = PASSWORD.replace('"', '""')
        (self.folder / "userlist.txt").write_text(f'"{USER}" "{quoted_password}"\n')
        (self.folder / "pgbouncer.ini").write_text(f"""[databases]
* = host={params.get("host", "127.0.0.1")} port={params.get("port", "5432")}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.folder / "userlist.txt"}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
min_pool_size = 0
server_round_robin = 1
reserve_pool_size = 0
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {self.folder / "pgbouncer.log"}
log_connections = 0
log_disconnections = 0
""")
        if os_user:
            entry = pwd.getpwnam(os_user)
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process = subprocess.Popen([str(BINARY), str(self.folder / "pgbouncer.ini")], user=os_user,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.process.stderr.read() if self.process.stderr else ''}"
                                   f" {self.log()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on port {self.port}: {self.log()[-500:]}")

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, dbname: str, **options: str | None) -> str:
        """Gives a URL of dbname through the pooler, as production writes them (dotted user, encoded password)."""
        from urllib.parse import quote

        query: dict[str, str | None] = {"prepared_statement_cache_size": "0", "pgbouncer": "true", **options}
        tail = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        return f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{dbname}" + (
            f"?{tail}" if tail else "")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def create_pooler_role(admin: Database) -> None:
    """Creates the dotted login role (a superuser: it owns and repairs the test databases) once."""
    with connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(USER), sql.Literal(PASSWORD)))


def drop_pooler_role(admin: Database) -> None:
    """Drops the dotted role again (best effort: a database a failed test left behind may still need it)."""
    try:
        with connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(USER)))
    except Exception:  # noqa: BLE001 - the server goes away with the session anyway
        pass


def start(server: Database, os_user: str | None) -> PgBouncer:
    """Gives a running pgbouncer in front of server; skips (or fails in CI) when there is no pgbouncer."""
    if not BINARY.exists():
        message = f"no pgbouncer at {BINARY} (apt-get install pgbouncer)"
        if os.environ.get("MITA_TEST_REQUIRE_PGBOUNCER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if os.geteuid() == 0 and not os_user:
        os_user = "nobody"  # pgbouncer refuses root
    create_pooler_role(server)
    return PgBouncer(server, os_user)


class Hammer:
    """Other clients of the same pool: short transactions in a loop, each leaving a session TimeZone, search_path
    and extra_float_digits behind.

    With a pool of two server connections, every command's transactions interleave with these, on
    whichever server connection is free: a command that relied on session state would see it lost.
    """

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.stopping = threading.Event()
        self.transactions = 0
        self.pids: set[int] = set()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]

    def _run(self, n: int) -> None:
        zone = ("Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu")[n % 3]
        try:
            with connect(Database.from_url(self.url)) as conn:
                while not self.stopping.is_set():
                    with conn.transaction():
                        conn.execute(f"SET TimeZone TO '{zone}'")  # session state, as an app might leave it
                        # and settings the tool pins per transaction (search_path, exact float output)
                        conn.execute("SET search_path TO pg_catalog; SET extra_float_digits = 0")
                        row = conn.execute("SELECT pg_backend_pid(), pg_sleep(0.002)").fetchone()
                    with self._lock:
                        self.transactions += 1
                        self.pids.add(int(row[0]) if row else 0)
                    time.sleep(0.003)
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(self.pids) < 2 and time.monotonic() < deadline:  # both server connections in use before
            time.sleep(0.01)                                         # the command under test starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


@contextmanager
def hammering(url: str) -> Iterator[Hammer]:
    """Runs a Hammer on url for the block; asserts it ran, met no error and saw both server connections."""
    with Hammer(url) as hammer:
        yield hammer
    assert not hammer.errors, hammer.errors
    assert hammer.transactions > 0
