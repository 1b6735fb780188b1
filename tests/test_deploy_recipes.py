"""The deployment recipes of docs/deploy are tried where this machine can: cron expressions, the options of
the commands they run, the systemd units, the pg_cron function against a real database."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from croniter import croniter

from mita_integrity.cli import cli
from mita_integrity.database.connection import Database, connect

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"


def _commands() -> list[str]:
    """Gives every `mita-integrity …` command line the recipes run."""
    text = "\n".join(p.read_text() for p in DEPLOY.iterdir())
    found = re.findall(r"mita-integrity (schedule [^\"'>\n]*)", text)
    return [c.strip() for c in found]


def test_every_cron_expression_is_daily_at_two() -> None:
    crontab = (DEPLOY / "crontab").read_text().splitlines()
    expressions = [" ".join(line.split()[:5]) for line in crontab if line and not line.startswith("#")]
    expressions += re.findall(r'schedule: "([^"]+)"', (DEPLOY / "cronjob.yaml").read_text())
    expressions.append(json.loads((DEPLOY / "railway.json").read_text())["deploy"]["cronSchedule"])
    expressions += re.findall(r"'(\d+ \d+ \* \* \*)'", (DEPLOY / "pg_cron.sql").read_text())
    assert len(expressions) == 4
    for expression in expressions:
        assert croniter.is_valid(expression) and expression == "0 2 * * *"


@pytest.mark.parametrize("command", _commands())
def test_the_recipes_commands_parse(command: str) -> None:
    args = command.split()
    result = CliRunner().invoke(cli, [*args, "--help"])  # parses every option without running anything
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("mita-integrity")
    service = (DEPLOY / "mita-integrity.service").read_text().replace("/opt/mita-integrity/bin/mita-integrity",
                                                                      str(exe))
    (tmp_path / "mita-integrity.service").write_text(service)
    (tmp_path / "mita-integrity.timer").write_text((DEPLOY / "mita-integrity.timer").read_text())
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "mita-integrity.service"),
                             str(tmp_path / "mita-integrity.timer")], capture_output=True, text=True)
    assert result.returncode == 0 and "mita-integrity" not in result.stderr, result.stderr


def test_pg_cron_function_counts(baseline_db: Database) -> None:
    script = (DEPLOY / "pg_cron.sql").read_text()
    body = script[:script.index("SELECT cron.schedule")]  # pg_cron itself is not on this server
    with connect(baseline_db) as conn:
        conn.execute(body.encode())
        conn.execute(b"INSERT INTO daily_plan (user_id, date, category) VALUES (gen_random_uuid(), now(), 'x')")
        conn.execute(b"SELECT integrity.pg_cron_check()")
        rows = dict(conn.execute(b"SELECT code, count FROM integrity.pg_cron_counts").fetchall())
        conn.rollback()
    assert rows == {"REF001": 0, "REF003": 1, "DUP002": 0}
