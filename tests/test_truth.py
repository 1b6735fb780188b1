"""The seed's known defects are exactly what `check` finds (the issue's 'done when', end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database
from mita_integrity.database.urls import build_url


@pytest.mark.parametrize("seed", [3, 11])
def test_check_finds_exactly_the_seeded_defects(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                tmp_path: Path, seed: int) -> None:
    url = build_url(baseline_db.parsed.params, mask_password=False)
    truth_file, report_file = tmp_path / "t.json", tmp_path / "r.json"
    assert main(["--db", url, "seed", "--users", "400", "--days", "30", "--seed", str(seed), "--corrupt",
                 "--truth", str(truth_file)]) == 0
    code = main(["--db", url, "check", "--format", "json", "--output", str(report_file)])
    capsys.readouterr()
    assert code == 2  # orphans and duplicate e-mails are critical
    truth = json.loads(truth_file.read_text())
    results = json.loads(report_file.read_text())["results"]
    found: dict[str, int] = {}
    groups: dict[str, int] = {}
    for result in results:
        found[result["code"]] = found.get(result["code"], 0) + result["count"]
        if result["groups"] is not None:
            groups[result["code"]] = groups.get(result["code"], 0) + result["groups"]
    mismatches = {}
    for key, expected in truth.items():
        code_name, _, part = key.partition(".")
        actual = groups.get(code_name) if part == "groups" else found.get(code_name)
        if actual != expected:
            mismatches[key] = (expected, actual)
    assert not mismatches, mismatches
    data_codes = {k for k in truth if "." not in k}
    assert len(data_codes) >= 35, sorted(data_codes)
