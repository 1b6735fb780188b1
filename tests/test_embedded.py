"""The embedded PostgreSQL: started when no URL is configured, said so in one line, reused afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mita_integrity.database import embedded


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A short path: the server's unix socket lives in its data folder (sockets have a ~100-byte limit).
    path = Path(f"/tmp/mita-home-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    path.mkdir()
    yield path
    pgdata = path / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        import pwd

        user = pwd.getpwuid(pgdata.stat().st_uid).pw_name
        subprocess.run([str(embedded.bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"],
                       capture_output=True, user=user if os.geteuid() == 0 else None)
    subprocess.run(["rm", "-rf", str(path)])


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MITA_INTEGRITY_HOME"] = str(home)
    exe = Path(sys.executable).with_name("mita-integrity")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=300)


def test_embedded_server_starts_says_so_and_is_reused(home: Path) -> None:
    first = _run(home, "migrate", "current")
    assert first.returncode == 0, first.stderr
    notice = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(notice) == 1 and notice[0].startswith("using the embedded PostgreSQL 16")
    assert str(home) in notice[0] and "database mita_demo" in notice[0]
    assert first.stdout.startswith("none: an empty database")
    assert (home / "pgdata" / "PG_VERSION").read_text().strip() == "16"

    up = _run(home, "migrate", "upgrade")
    assert up.returncode == 0, up.stderr
    started = time.monotonic()
    again = _run(home, "migrate", "current")
    assert again.stdout.splitlines()[0] == "mita-integrity: 0027_harden_spent_trigger (head)"
    assert time.monotonic() - started < 30  # reused, not initialised again


def test_unwritable_home_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = _run(blocker / "home", "migrate", "current")
    assert proc.returncode == 3
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MITA_INTEGRITY_HOME" in lines[0], proc.stderr
