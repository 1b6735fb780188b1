"""Every rule case in tests/rule_cases/*.toml, run by one generic test against a real PostgreSQL.

A case file is named after the rule code it exercises (`REF001.toml`, or `BUD001-dst.toml` for more cases
of one code) and holds one or more `[[case]]` tables:

    [[case]]
    description = "what the case shows"
    setup = "SQL run as the superuser on a fresh clone of the baseline database"
    select = "REF001"                 # optional; defaults to the file's code
    requires_extension = "amcheck"    # optional; the case is skipped where the extension cannot be created
    xfail = "why the rule gets it wrong"   # optional; the case is expected to fail (strict)
    [case.options]                    # optional CheckRequest fields: budget_days, day_boundary, since, sample,
    budget_days = 400                 # physical, no_guarantees
    [[case.expect]]                   # one per table the result is compared on
    table = "transactions"
    count = 2
    groups = 1                        # optional
    status = "fail"                   # optional: fail when count > 0, else pass; or guaranteed, skipped, error
    reason_contains = "amcheck"       # optional
    sample = ["…", "…"]               # optional: primary keys, compared as a set when count <= sample size

For a rule with one table the results must be exactly the expected tables; for a per-table rule
(REF010, SDL001, SCH001 …) only the listed tables are compared.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from mita_integrity.check.rule_registry import BY_CODE
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.findings import Result

CASES_DIR = Path(__file__).resolve().parent / "rule_cases"
OPTION_KEYS = {"budget_days", "day_boundary", "since", "sample", "physical", "no_guarantees"}
CASE_KEYS = {"description", "setup", "select", "options", "expect", "requires_extension", "xfail"}
EXPECT_KEYS = {"table", "count", "groups", "status", "reason_contains", "sample", "fix_after",
               "undo_conflicts"}


@dataclass(frozen=True)
class RuleCase:
    """One case of one rule code, as read from its file."""

    file: str
    index: int
    code: str
    description: str
    setup: str
    select: str
    options: dict[str, Any]
    expect: tuple[dict[str, Any], ...]
    requires_extension: str | None = None
    xfail: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}-{self.index}"


def code_of(path: Path) -> str:
    """Gives the rule code a case file is about: its name up to the first '-'."""
    return path.stem.split("-", 1)[0]


def load_cases(directory: Path = CASES_DIR) -> list[RuleCase]:
    """Gives every case of every case file, in file order; raises ValueError on a malformed file."""
    cases = []
    for path in sorted(directory.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        code = data.get("code", code_of(path))
        if set(data) - {"code", "case"} or not data.get("case"):
            raise ValueError(f"{path.name}: expected only `code` and [[case]] tables")
        for index, raw in enumerate(data["case"]):
            unknown = set(raw) - CASE_KEYS
            options = raw.get("options", {})
            expect = raw.get("expect", [])
            if unknown or set(options) - OPTION_KEYS or not expect or not raw.get("description"):
                raise ValueError(f"{path.name} case {index}: unknown keys, or no description/expect")
            for item in expect:
                if set(item) - EXPECT_KEYS or "table" not in item:
                    raise ValueError(f"{path.name} case {index}: bad [[case.expect]] {item}")
            cases.append(RuleCase(
                file=path.name, index=index, code=code, description=raw["description"],
                setup=raw.get("setup", ""), select=raw.get("select", code), options=dict(options),
                expect=tuple(expect), requires_extension=raw.get("requires_extension"), xfail=raw.get("xfail"),
            ))
    return cases


CASES = load_cases()


def _params() -> list[Any]:
    out = []
    for case in CASES:
        marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def _prepare(db: Database, case: RuleCase) -> None:
    with connect(db, autocommit=True) as conn:
        if case.requires_extension:
            try:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(
                    sql.Identifier(case.requires_extension)))
            except psycopg.Error as exc:
                pytest.skip(f"extension {case.requires_extension} cannot be created here: {exc}".splitlines()[0])
    if case.setup.strip():
        # One transaction, sent without parameters: psycopg runs every statement of the script.
        with connect(db) as conn:
            conn.execute(case.setup.encode())


def _observed(result: Result, expected: dict[str, Any], sample_size: int) -> dict[str, Any]:
    """Gives the result's fields the expectation speaks about, in the expectation's own terms."""
    seen: dict[str, Any] = {"status": result.status.value, "count": result.count}
    if "groups" in expected:
        seen["groups"] = result.groups
    if "reason_contains" in expected:
        reason = result.reason or ""
        seen["reason_contains"] = expected["reason_contains"] if expected["reason_contains"] in reason else reason
    if "sample" in expected:
        sample = set(result.sample)
        want = set(expected["sample"])
        assert len(result.sample) <= sample_size, f"sample longer than --sample {sample_size}: {result.sample}"
        if expected["count"] > sample_size:  # only part of the violators can be shown: any of them will do
            seen["sample"] = sorted(expected["sample"]) if sample <= want else sorted(sample)
        else:
            seen["sample"] = sorted(sample)
    return seen


def _wanted(expected: dict[str, Any]) -> dict[str, Any]:
    count = int(expected.get("count", 0))
    want: dict[str, Any] = {"status": expected.get("status", "fail" if count > 0 else "pass"), "count": count}
    for key in ("groups", "reason_contains"):
        if key in expected:
            want[key] = expected[key]
    if "sample" in expected:
        want["sample"] = sorted(expected["sample"])
    return want


@pytest.mark.parametrize("case", _params())
def test_rule_case(baseline_db: Database, case: RuleCase) -> None:
    _prepare(baseline_db, case)
    report = run_check(baseline_db, CheckRequest(select=[case.select], **case.options))
    results = [r for r in report.results if r.code == case.code]
    by_table: dict[str, Result] = {}
    for r in results:
        assert r.table not in by_table, f"{case.code} gave two results for {r.table}"
        by_table[r.table] = r
    expected_tables = [e["table"] for e in case.expect]
    if BY_CODE[case.code].table is not None:
        assert sorted(by_table) == sorted(expected_tables), f"{case.description}: tables differ"
    sample_size = int(case.options.get("sample", CheckRequest.sample))
    for expected in case.expect:
        table = expected["table"]
        assert table in by_table, f"{case.description}: no {case.code} result on {table} (got {sorted(by_table)})"
        result = by_table[table]
        assert _observed(result, expected, sample_size) == _wanted(expected), (
            f"{case.description} — {case.code} on {table}: reason={result.reason!r}")
