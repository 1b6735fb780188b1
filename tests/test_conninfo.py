"""`sql --conninfo`: a psql recipe that works for every URL the tool accepts (issue 16, item 15).

The README's `${DATABASE_URL%%\\?*}` dropped `?host=…` from a socket URL (the demo's), and psql then fell back
to its default socket. The libpq connection string keeps every libpq option and drops the driver options.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from mita_integrity.database import embedded
from mita_integrity.database.connection import Database
from mita_integrity.database.urls import conninfo, parse_url

from .dbstate import cli_url

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("mita-integrity")


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://postgres@/mita_demo?host=/home/ann/.local/share/mita-integrity/pgdata",
     {"user": "postgres", "dbname": "mita_demo", "host": "/home/ann/.local/share/mita-integrity/pgdata"}),
    ("postgresql://postgres.ref:p%40ss%3Aw0rd@aws-0-us-east-2.pooler.supabase.com:5432/postgres"
     "?prepared_statement_cache_size=0&sslmode=require",
     {"user": "postgres.ref", "password": "p@ss:w0rd", "host": "aws-0-us-east-2.pooler.supabase.com",
      "port": "5432", "dbname": "postgres", "sslmode": "require"}),
    ("postgresql+asyncpg://u:pw@h1:5432,h2:5433/mita?target_session_attrs=read-write&pgbouncer=true",
     {"user": "u", "password": "pw", "host": "h1,h2", "port": "5432,5433", "dbname": "mita",
      "target_session_attrs": "read-write"}),
])
def test_the_connection_string_keeps_libpq_options_and_drops_driver_ones(url: str, expected: dict[str, str]) -> None:
    params = parse_url(url).params
    assert conninfo_to_dict(conninfo(params, mask_password=False)) == expected
    masked = conninfo_to_dict(conninfo(params))
    assert masked.get("password") in (None, "***") and "p@ss" not in conninfo(params)


def _psql() -> str:
    found = shutil.which("psql") or str(embedded.bin_dir() / "psql")
    if not os.access(found, os.X_OK):
        pytest.skip("no psql binary")
    return found


def test_psql_connects_with_the_printed_connection_string(baseline_db: Database) -> None:
    url = cli_url(baseline_db, prepared_statement_cache_size="0")  # a driver option psql would refuse
    printed = subprocess.run([str(SCRIPT), "--db", url, "sql", "--conninfo"], capture_output=True, text=True,
                             timeout=120)
    assert printed.returncode == 0, printed.stderr
    info = printed.stdout.strip()
    assert "\n" not in info and "prepared_statement_cache_size" not in info
    query = subprocess.run([_psql(), info, "-XAtc", "SELECT current_database()"], capture_output=True, text=True,
                           timeout=60)
    assert query.returncode == 0, query.stderr
    assert query.stdout.strip() == baseline_db.dbname


def test_the_readme_gives_the_recipe_that_works_for_every_url() -> None:
    readme = (ROOT / "README.md").read_text()
    assert '${DATABASE_URL%%\\?*}' not in readme
    assert 'psql "$(mita-integrity sql --conninfo)" -f sql/data_integrity_check.sql' in readme
