"""CI's gate on the database tests (tests/conftest.py) holds when the suite runs on several xdist workers.

With MITA_TEST_REQUIRE_DB=1 a run in which no test that uses the server passed must fail, even though each
worker sees only its share of the tests: the controller decides, from the reports the workers send it. A
throw-away suite stands in for ours: its `pg` fixture starts nothing, and the gate's hooks are this
project's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")
ROOT = Path(__file__).resolve().parents[1]

CONFTEST = """
import pytest
from tests.conftest import pytest_runtest_logreport, pytest_runtest_makereport, pytest_sessionfinish

@pytest.fixture
def pg():
    if SKIP_SERVER:
        pytest.skip("no PostgreSQL")
    return object()
"""
TESTS = """
def test_plain_{n}():
    pass

def test_with_the_server_{n}(pg):
    pass
"""


def _run(tmp_path: Path, *, server: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(f"SKIP_SERVER = {not server}\n" + CONFTEST)
    for n in range(4):
        (tmp_path / f"test_part_{n}.py").write_text(TESTS.format(n=n))
    env = {**os.environ, "MITA_TEST_REQUIRE_DB": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_a_run_whose_server_tests_passed_on_the_workers_passes(tmp_path: Path) -> None:
    proc = _run(tmp_path, server=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 passed" in proc.stdout and "no test against PostgreSQL passed" not in proc.stdout


def test_a_run_whose_server_tests_were_all_skipped_fails(tmp_path: Path) -> None:
    proc = _run(tmp_path, server=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "4 passed, 4 skipped" in proc.stdout and "no test against PostgreSQL passed" in proc.stdout
