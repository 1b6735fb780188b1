"""Bad input across commands, against a real database: exit 3, one `error:` line, no traceback, no password
shown, and the database byte for byte as before (test_cli_errors.py covers the URL mistakes without one)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

from .dbstate import checksums, cli_url, run_sql

PASSWORD = "Matr1x-Secret-pw"
UNKNOWN_RUN = "0badc0de-0000-4000-8000-000000000000"


@dataclass
class Env:
    """What a case may use: the database, its owner's URL, a scratch folder."""

    db: Database
    url: str
    tmp: Path
    http_port: int

    def role_url(self, user: str, password: str, **extra: str) -> str:
        return build_url({**self.db.parsed.params, "user": user, "password": password, **extra}, mask_password=False)


def _http_port() -> Iterator[int]:
    """A port where an HTTP server (not PostgreSQL) answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _role_with_password(env: Env) -> None:
    role = f"mx_{env.db.dbname[-10:]}"
    run_sql(env.db, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(PASSWORD)).as_string())


def _wrong_password(env: Env) -> list[str]:
    _role_with_password(env)
    return ["--db", env.role_url(f"mx_{env.db.dbname[-10:]}", PASSWORD + "-wrong"), "check"]


def _emptied(env: Env) -> None:
    run_sql(env.db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def _fixed_once(env: Env) -> str:
    """Makes an orphan, repairs it and undoes the repair; gives the run id."""
    run_sql(env.db, "INSERT INTO habits (id, user_id, title) VALUES "
                    "('40000000-0000-0000-0000-000000000001', '50000000-0000-0000-0000-000000000001', 'walk')")
    assert main(["--db", env.url, "fix", "--apply", "--select", "REF005"]) == 0
    (run,) = run_sql(env.db, "SELECT id::text FROM integrity.runs WHERE kind = 'fix'")
    assert main(["--db", env.url, "undo", run[0], "--apply"]) == 0
    return str(run[0])


def _config(env: Env, text: str) -> str:
    path = env.tmp / "alerts.toml"
    path.write_text(text)
    return str(path)


Case = Callable[[Env], list[str]]
CASES: dict[str, Case] = {
    # where to connect
    "url with a bad port": lambda e: ["--db", e.url.replace(f":{e.db.parsed.params['port']}/", ":0x10/"), "check"],
    "url with an unknown option": lambda e: ["--db", e.url + "?sslmode=sometimes", "fix"],
    "url of an unknown database": lambda e: ["--db", cli_url(e.db.with_dbname("no_such_db_here")), "verify"],
    "wrong password": _wrong_password,
    "unknown role": lambda e: ["--db", e.role_url("no_such_role_x", PASSWORD), "runs"],
    "unreachable host": lambda e: ["--db", e.role_url("u", PASSWORD, host="192.0.2.1", connect_timeout="1"), "check"],
    "port with no server": lambda e: ["--db", e.role_url("u", PASSWORD, port=str(_free_port())), "verify"],
    "port where http answers": lambda e: ["--db", e.role_url("u", PASSWORD, port=str(e.http_port)), "check"],
    # what is in the database
    "empty database: check": lambda e: (_emptied(e), ["--db", e.url, "check"])[1],
    "empty database: fix": lambda e: (_emptied(e), ["--db", e.url, "fix"])[1],
    "empty database: verify": lambda e: (_emptied(e), ["--db", e.url, "verify"])[1],
    "tables with a missing column: seed": lambda e: (
        run_sql(e.db, "ALTER TABLE transactions DROP COLUMN merchant"), ["--db", e.url, "seed", "--users", "5"])[1],
    "unknown alembic_version: migrate upgrade": lambda e: (
        run_sql(e.db, "UPDATE integrity.alembic_version SET version_num = '0099_from_the_future'"),
        ["--db", e.url, "migrate", "upgrade", "head"])[1],
    # rules and flags
    "check --select unknown": lambda e: ["--db", e.url, "check", "--select", "XYZ999"],
    "check --ignore unknown": lambda e: ["--db", e.url, "check", "--ignore", "XYZ999"],
    "fix --select unknown": lambda e: ["--db", e.url, "fix", "--apply", "--select", "XYZ999"],
    "check selects nothing (select = ignore)": lambda e: ["--db", e.url, "check", "--select", "REF001",
                                                          "--ignore", "REF001"],
    "rules unknown code": lambda e: ["--db", e.url, "rules", "XYZ999"],
    "two formats into one file": lambda e: ["--db", e.url, "check", "--format", "json", "--format", "html",
                                            "--output", str(e.tmp / "r.json")],
    "output into a missing folder": lambda e: ["--db", e.url, "check", "--format", "json",
                                               "--output", str(e.tmp / "no" / "such" / "r.json")],
    "runs --html without --show": lambda e: ["--db", e.url, "runs", "--html", str(e.tmp / "r.html")],
    "runs --show unknown run": lambda e: ["--db", e.url, "runs", "--show", UNKNOWN_RUN],
    # numbers
    "fix --batch-size -1": lambda e: ["--db", e.url, "fix", "--apply", "--batch-size", "-1"],
    "fix --max-rows -1": lambda e: ["--db", e.url, "fix", "--apply", "--max-rows", "-1"],
    "fix --max-rows 0 with work to do": lambda e: (
        run_sql(e.db, "INSERT INTO habits (id, user_id, title) VALUES ('40000000-0000-0000-0000-000000000001', "
                      "'50000000-0000-0000-0000-000000000001', 'walk')"),
        ["--db", e.url, "fix", "--apply", "--max-rows", "0", "--select", "REF005"])[1],
    "check --sample 10**12": lambda e: ["--db", e.url, "check", "--sample", str(10**12)],
    "check --sample -1": lambda e: ["--db", e.url, "check", "--sample", "-1"],
    "check --budget-days 0": lambda e: ["--db", e.url, "check", "--budget-days", "0"],
    "check --since -5d": lambda e: ["--db", e.url, "check", "--since", "-5d"],
    "check --since 10**11d": lambda e: ["--db", e.url, "check", "--since", f"{10**11}d"],
    "check --statement-timeout -5s": lambda e: ["--db", e.url, "check", "--statement-timeout", "-5s"],
    "fix --lock-timeout soon": lambda e: ["--db", e.url, "fix", "--lock-timeout", "soon"],
    "check --statement-timeout 30d": lambda e: ["--db", e.url, "check", "--statement-timeout", "30d"],
    "fix --apply --lock-timeout 30d": lambda e: ["--db", e.url, "fix", "--apply", "--lock-timeout", "30d"],
    "fix --lock-timeout 30d (dry run)": lambda e: ["--db", e.url, "fix", "--lock-timeout", "30d"],
    "verify --max-age 0x": lambda e: ["--db", e.url, "verify", "--max-age", "0x"],
    "seed --users 10**12": lambda e: ["--db", e.url, "seed", "--users", str(10**12)],
    "undo --batch-size 0": lambda e: ["--db", e.url, "undo", UNKNOWN_RUN, "--batch-size", "0"],
    # schedule and alerts
    "schedule --cron 61 * * * *": lambda e: ["--db", e.url, "schedule", "--cron", "61 * * * *"],
    "schedule --cron with six fields": lambda e: ["--db", e.url, "schedule", "--cron", "0 0 2 * * *"],
    "schedule --timezone Mars/Base": lambda e: ["--db", e.url, "schedule", "--once", "--timezone", "Mars/Base"],
    "alert config with an unknown key": lambda e: ["--db", e.url, "check", "--alert", "--config",
                                                   _config(e, '[alerts]\nslack_hook = "https://x.invalid/"\n')],
    "alert config that is not TOML": lambda e: ["--db", e.url, "schedule", "--once", "--config",
                                                _config(e, "[alerts\nwebhook_url = ")],
    "alert config that is a folder": lambda e: ["--db", e.url, "check", "--alert", "--config", str(e.tmp)],
    "alert config with a bad webhook url": lambda e: ["--db", e.url, "check", "--alert", "--config",
                                                      _config(e, '[alerts]\nwebhook_url = "ftp://x.invalid/"\n')],
    "alert config missing": lambda e: ["--db", e.url, "check", "--alert", "--config", str(e.tmp / "none.toml")],
    # undo
    "undo an unknown run": lambda e: ["--db", e.url, "undo", UNKNOWN_RUN],
    "undo a malformed run id": lambda e: ["--db", e.url, "undo", "not-a-run"],
    "undo the same run twice": lambda e: ["--db", e.url, "undo", _fixed_once(e)],
    "undo a check run": lambda e: (main(["--db", e.url, "check", "--record", "--select", "REF005"]), [
        "--db", e.url, "undo", run_sql(e.db, "SELECT id::text FROM integrity.runs")[0][0]])[1],
}


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    yield from _http_port()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, capsys: pytest.CaptureFixture[str], baseline_db: Database, tmp_path: Path,
                   http_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MITA_SLACK_WEBHOOK_URL", "MITA_SMTP_URL", "SENTRY_DSN", "MITA_ALERT_WEBHOOK_URL", "DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    env = Env(baseline_db, cli_url(baseline_db), tmp_path, http_port)
    args = CASES[name](env)
    capsys.readouterr()
    before = checksums(baseline_db)
    code = main(args)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, (code, out[-500:], err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err and PASSWORD not in out + err
    assert checksums(baseline_db) == before
    with connect(baseline_db) as conn:
        conn.execute("SELECT 1")  # the database is still there and reachable
