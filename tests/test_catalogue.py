"""The catalogue's integrity: DESIGN's codes and severities, complete documentation, a case file per code."""

from __future__ import annotations

import json
import re

import pytest

from mita_integrity.check.rule_registry import ALL_RULES, BY_CODE
from mita_integrity.check.rules.base import Rule
from mita_integrity.cli import main
from mita_integrity.findings import SECTIONS, FixSafety, Severity

from .test_rule_cases import CASES, CASES_DIR, code_of

C, H, M, L, INFO = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO

# DESIGN.md, "The rule catalogue": every code and its severity. Codes are stable: a change here is a
# change of contract.
DESIGN_SEVERITIES: dict[str, Severity] = {
    "NUL001": H, "NUL002": H, "NUL003": C, "NUL004": H, "NUL005": C, "NUL006": H,
    "NUL007": C, "NUL008": H, "NUL009": C, "NUL010": C, "NUL011": H,
    "REF001": C, "REF002": C, "REF003": C, "REF004": C, "REF005": H, "REF006": H, "REF007": H, "REF008": H,
    "REF010": H, "REF011": M,
    "DUP001": C, "DUP002": H, "DUP003": M,
    "TIM001": M, "TIM002": M, "TIM003": M, "TIM004": H, "TIM005": M,
    "BUD001": H, "BUD002": M,
    "GOL001": H, "GOL002": M, "GOL003": M, "GOL004": H, "GOL005": H, "GOL006": M,
    "AMT001": M, "AMT002": L, "AMT003": H, "AMT004": M, "AMT005": H, "AMT006": H,
    "SDL001": INFO, "SDL002": L,
    "SCH001": H, "SCH002": H, "SCH003": H, "SCH004": M, "SCH005": M, "SCH006": L, "SCH007": H, "SCH008": H,
    "SCH009": C,
    "USR001": M, "USR002": L, "USR003": INFO,
    "CAL001": M, "CAL002": INFO,
    "PHY001": C,
}
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DOC_FIELDS = ("finds", "why", "example", "repair")


def _squeezed(text: str) -> str:
    """Gives text without any whitespace, so that wrapped output can be searched for a field."""
    return "".join(text.split())


def test_codes_and_severities_are_designs() -> None:
    assert {r.code: r.severity for r in ALL_RULES} == DESIGN_SEVERITIES


def test_codes_and_names_are_unique() -> None:
    codes = [r.code for r in ALL_RULES]
    names = [r.name for r in ALL_RULES]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert set(BY_CODE) == set(codes)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_is_documented(rule: Rule) -> None:
    for name in DOC_FIELDS:
        assert getattr(rule, name).strip(), f"{rule.code}.{name} is empty"
    assert isinstance(rule.repair_safety, FixSafety)
    assert rule.section in SECTIONS and 1 <= rule.section <= 14
    assert KEBAB.match(rule.name), f"{rule.code}: name {rule.name!r} is not kebab-case"
    assert re.fullmatch(r"[A-Z]{3}\d{3}", rule.code)


def test_every_code_has_a_case_file() -> None:
    with_files = {code_of(p) for p in CASES_DIR.glob("*.toml")}
    assert sorted(set(BY_CODE) - with_files) == []


def test_every_case_file_names_a_known_code() -> None:
    assert sorted({case.code for case in CASES} - set(BY_CODE)) == []
    assert sorted({code_of(p) for p in CASES_DIR.glob("*.toml")} - set(BY_CODE)) == []


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rules_code_prints_every_field(rule: Rule, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", rule.code]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"{rule.code} {rule.name}")
    printed = _squeezed(out)
    for name in DOC_FIELDS:
        assert _squeezed(getattr(rule, name)) in printed, f"`rules {rule.code}` does not print {name}"
    assert rule.severity.value in out and rule.repair_safety.value in out


def test_rules_code_accepts_lower_case_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    rule = BY_CODE["REF003"]
    assert main(["rules", "ref003"]) == 0
    by_code = capsys.readouterr().out
    assert main(["rules", rule.name]) == 0
    assert capsys.readouterr().out == by_code


def test_rules_lists_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if re.match(r"[A-Z]{3}\d{3}\s", line)}
    assert listed == set(BY_CODE)


def test_rules_json_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in listing] == [r.code for r in ALL_RULES]
    for item in listing:
        rule = BY_CODE[item["code"]]
        assert {k: item[k] for k in ("name", "section", "severity", "repair_safety", *DOC_FIELDS)} == {
            "name": rule.name, "section": rule.section, "severity": rule.severity.value,
            "repair_safety": rule.repair_safety.value, **{k: getattr(rule, k) for k in DOC_FIELDS}}


def test_rules_code_json_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "BUD001", "--format", "json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["code"] == "BUD001" and item["severity"] == "high" and item["why"] == BY_CODE["BUD001"].why


def test_rules_unknown_code_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "NOPE"]) == 3
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert out == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and "NOPE" in lines[0], err
    assert "Traceback" not in err
