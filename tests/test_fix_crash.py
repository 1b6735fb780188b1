"""A `fix --apply` killed with SIGKILL mid-run: archive and data still agree (every batch is all or nothing),
the run shows as interrupted, a second `fix --apply` finishes the job, and undoing both restores everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

from .dbstate import checksums

ORPHANS = 4000


def _one(db: Database, query: str) -> int:
    with connect(db) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row else 0


def _archived(db: Database) -> int:
    if not _one(db, "SELECT (to_regclass('integrity.archive') IS NOT NULL)::int"):
        return 0
    return _one(db, "SELECT count(*) FROM integrity.archive")


def test_killed_fix_leaves_archive_and_data_consistent_and_a_rerun_completes(
        baseline_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    with connect(baseline_db) as conn:
        conn.execute(f"""INSERT INTO moods (id, user_id, date, mood)
                         SELECT md5('m' || g)::uuid, md5('ghost' || g)::uuid, date '2026-01-01' + g % 30, 'ok'
                           FROM generate_series(1, {ORPHANS}) g""".encode())
        conn.commit()
    before = checksums(baseline_db)
    url = build_url(baseline_db.parsed.params, mask_password=False)
    script = Path(sys.executable).with_name("mita-integrity")
    proc = subprocess.Popen([str(script), "--db", url, "fix", "--apply", "--select", "REF010", "--batch-size", "10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _archived(baseline_db) < 300 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the fix finished before it could be killed: make the batches smaller"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # Every batch committed whole or not at all: what the archive holds is exactly what is gone.
    archived = _archived(baseline_db)
    assert 300 <= archived < ORPHANS
    assert _one(baseline_db, "SELECT count(*) FROM integrity.archive a JOIN moods m "
                             "ON m.id = (a.pk->>'id')::uuid") == 0
    assert _one(baseline_db, "SELECT count(*) FROM moods") + archived == ORPHANS

    db = ["--db", url]
    deadline = time.monotonic() + 10  # the killed session's backend goes away shortly
    while True:
        assert main([*db, "runs", "--format", "json"]) == 0
        runs = json.loads(capsys.readouterr().out)
        if runs[0]["status"] == "interrupted" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [r["status"] for r in runs] == ["interrupted"]

    assert main([*db, "fix", "--apply", "--select", "REF010", "--format", "json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["changed"] == ORPHANS - archived
    assert _one(baseline_db, "SELECT count(*) FROM moods") == 0

    for run in (second["run_id"], runs[0]["id"]):  # newest first
        assert main([*db, "undo", run, "--apply"]) == 0
    capsys.readouterr()
    assert checksums(baseline_db) == before
