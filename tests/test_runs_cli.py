"""`runs` as a person reads it: at 80 columns (a narrow terminal, COLUMNS=80) and in a pipe, one run a line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

ORPHAN_PLAN = ("INSERT INTO daily_plan (id, user_id, date, category) VALUES ('00000000-0000-0000-0000-0000000000b1', "
               "'00000000-0000-0000-0000-0000000000ff', date_trunc('day', now(), 'UTC'), 'food')")


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def _runs(url: str, env: dict[str, str]) -> list[str]:
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    done = subprocess.run([exe, "--db", url, "runs"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("columns", ["80", None], ids=["COLUMNS=80", "piped"])
def test_runs_reads_at_80_columns_and_in_a_pipe(baseline_db: Database, columns: str | None) -> None:
    url = _url(baseline_db)
    with connect(baseline_db) as conn:
        conn.execute(ORPHAN_PLAN.encode())
        conn.commit()
    exe = str(Path(sys.executable).with_name("mita-integrity"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MITA_", "SENTRY_")) and k != "COLUMNS"}
    env["MITA_INTEGRITY_HOME"] = os.environ.get("MITA_INTEGRITY_HOME", "")
    for args in (["check", "--record"], ["check", "--record", "--select", "REF"],
                 ["fix", "--apply", "--select", "REF003"]):
        subprocess.run([exe, "--db", url, *args], capture_output=True, env=env, timeout=300, check=False)
    if columns is not None:
        env["COLUMNS"] = columns
    lines = _runs(url, env)
    assert len(lines) == 4, lines  # a header and one line per run: nothing wrapped
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    assert lines[0].split() == ["id", "started", "(UTC)", "kind", "status", "summary"]
    kinds = [line.split()[3] for line in lines[1:]]
    assert kinds == ["fix", "check", "check"]
    assert all(len(line.split()[0]) == 8 for line in lines[1:])  # short ids (runs --show takes them)
    assert any(line.endswith("…") for line in lines[1:])  # the full catalogue's summary is cut at the end
    assert all("completed" in line for line in lines[1:])
