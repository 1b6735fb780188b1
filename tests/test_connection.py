"""Connections against a real server: session settings, no prepared statements, one-line failures."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from mita_integrity.database.connection import Database, connect, transaction
from mita_integrity.database.errors import ConnectionFailed
from mita_integrity.database.urls import build_url

from .conftest import PgServer


@pytest.fixture
def password_role(pg: PgServer) -> Iterator[tuple[str, str]]:
    """A login role with a password that needs URL-encoding: (name, password)."""
    name, password = "mita_pw_user", "s3cr@t:/%?pw"
    pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
    yield name, password
    pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _tcp(pg: PgServer) -> tuple[str, str]:
    params = pg.admin.parsed.params
    if params.get("host", "").startswith("/") or "port" not in params:
        pytest.skip("the test server is not on TCP")
    return params["host"], params["port"]


def test_session_is_utc_named_and_never_prepares(pg: PgServer) -> None:
    with connect(pg.admin) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("mita-integrity",)
        for _ in range(10):  # psycopg would prepare after 5 executions by default
            conn.execute("SELECT 1 WHERE %s::int = 1", (1,))
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_transaction_sets_everything_locally(pg: PgServer) -> None:
    with connect(pg.admin) as conn, transaction(conn, read_only=True, repeatable_read=True,
                                                statement_timeout_ms=1234, lock_timeout_ms=500) as cur:
        cur.execute("SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation'),"
                    " current_setting('statement_timeout'), current_setting('lock_timeout')")
        assert cur.fetchone() == ("on", "repeatable read", "1234ms", "500ms")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE nope (x int)")


def test_url_encoded_password_is_decoded_exactly_once(pg: PgServer, password_role: tuple[str, str]) -> None:
    host, port = _tcp(pg)
    name, password = password_role
    url = build_url({"user": name, "password": password, "host": host, "port": port, "dbname": "postgres"},
                    mask_password=False)
    assert "%40" in url  # the URL carries the encoded form
    with connect(Database.from_url(url + "?prepared_statement_cache_size=0")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (name,)


def _expect_failure(url: str, *fragments: str) -> str:
    with pytest.raises(ConnectionFailed) as info:
        connect(Database.from_url(url))
    line = info.value.one_line()
    assert "\n" not in line
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_wrong_password_is_one_line_without_the_password(pg: PgServer, password_role: tuple[str, str]) -> None:
    host, port = _tcp(pg)
    line = _expect_failure(f"postgresql://{password_role[0]}:WrongHorse99@{host}:{port}/postgres",
                           "password authentication failed")
    assert "WrongHorse99" not in line and "***" in line


def test_unknown_database(pg: PgServer) -> None:
    host, port = _tcp(pg)
    _expect_failure(f"postgresql://postgres@{host}:{port}/no_such_db_here", "does not exist", "no_such_db_here")


def test_refused_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        _expect_failure(f"postgresql://u:secret@127.0.0.1:{port}/x", "connection refused")


def test_unknown_host() -> None:
    _expect_failure("postgresql://u:secret@no-such-host.invalid:5432/x", "unknown host")


def _serve(handler) -> Iterator[int]:  # type: ignore[no-untyped-def]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handler, args=(client, stop), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def http_port() -> Iterator[int]:
    """A port where an HTTP server, not PostgreSQL, answers."""
    def handler(client: socket.socket, stop: threading.Event) -> None:
        client.recv(1024)
        client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        client.close()
    yield from _serve(handler)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a black hole)."""
    def handler(client: socket.socket, stop: threading.Event) -> None:
        stop.wait(10)
        client.close()
    yield from _serve(handler)


def test_non_postgres_port(http_port: int) -> None:
    _expect_failure(f"postgresql://u:secret@127.0.0.1:{http_port}/x?sslmode=disable", "not a PostgreSQL server")


def test_unreachable_host_times_out(silent_port: int) -> None:
    _expect_failure(f"postgresql://u:secret@127.0.0.1:{silent_port}/x?connect_timeout=1&sslmode=disable",
                    "timed out")


@pytest.mark.parametrize("setting,state", [("idle_in_transaction_session_timeout", "25P03"),
                                           ("idle_session_timeout", "57P05")])
def test_a_session_the_server_timed_out_is_a_lost_connection(pg: PgServer, setting: str, state: str) -> None:
    """The server ends an idle session with a FATAL of its own SQLSTATE: the session is gone (told by that
    SQLSTATE, not by the message), so the user gets the one-line 'lost the connection', not a traceback."""
    from mita_integrity.database.errors import connection_lost, is_connection_lost

    from .polling import until

    in_transaction = setting == "idle_in_transaction_session_timeout"
    with connect(pg.admin, autocommit=not in_transaction) as conn, connect(pg.admin, autocommit=True) as watcher:
        pid = conn.info.backend_pid
        conn.execute(sql.SQL("SET {} = 200").format(sql.Identifier(setting)))  # ms (in a transaction unless autocommit)
        until("the server to end the idle session", lambda: watcher.execute(
            "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (pid,)).fetchone() == (True,))
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT 1")
    assert info.value.sqlstate == state
    assert is_connection_lost(info.value)  # by its SQLSTATE alone: callers often no longer hold the connection
    assert connection_lost(info.value, "check", "nothing was changed").one_line().startswith(
        "lost the connection to the database during check (")


@pytest.fixture
def missing_role_port() -> Iterator[int]:
    """A port where a server answers every startup as PostgreSQL does for a role it does not know: an
    ErrorResponse (FATAL, SQLSTATE 28000) naming the role."""
    def handler(client: socket.socket, stop: threading.Event) -> None:
        client.recv(1024)  # the startup packet (sslmode=disable and gssencmode=disable: no negotiation first)
        fields = b"".join(code + text.encode() + b"\0" for code, text in (
            (b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28000"),
            (b"M", 'role "mita_database_reader" does not exist')))
        body = fields + b"\0"
        client.sendall(b"E" + (len(body) + 4).to_bytes(4, "big") + body)
        client.close()
    yield from _serve(handler)


def test_a_missing_role_is_named_as_the_role_not_the_database(missing_role_port: int) -> None:
    line = _expect_failure(f"postgresql://mita_database_reader:pw@127.0.0.1:{missing_role_port}/mita"
                           "?sslmode=disable&gssencmode=disable", 'role "mita_database_reader" does not exist')
    assert "database 'mita' does not exist" not in line and "check the user name in the URL" in line
