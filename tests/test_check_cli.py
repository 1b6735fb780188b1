"""`check` end to end through the CLI: exit codes, formats, output files, read-only, bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url

ORPHAN_HABIT = "INSERT INTO habits (id, user_id, title) VALUES ('00000000-0000-0000-0000-0000000000a1', " \
               "'00000000-0000-0000-0000-0000000000ff', 'walk')"
ORPHAN_PLAN = "INSERT INTO daily_plan (id, user_id, date, category) VALUES ('00000000-0000-0000-0000-0000000000b1', " \
              "'00000000-0000-0000-0000-0000000000ff', date_trunc('day', now()), 'food')"


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def _run(capsys: pytest.CaptureFixture[str], db: Database, *args: str) -> tuple[int, str, str]:
    code = main(["--db", _url(db), "check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _execute(db: Database, statement: str) -> None:
    with connect(db) as conn:
        conn.execute(statement)
        conn.commit()


@pytest.mark.parametrize("setup,expected", [(None, 0), (ORPHAN_HABIT, 1), (ORPHAN_PLAN, 2)],
                         ids=["clean", "high", "critical"])
def test_exit_code_follows_the_worst_finding(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                             setup: str | None, expected: int) -> None:
    if setup:
        _execute(baseline_db, setup)
    # At the baseline the schema itself fails SCH rules (that is what migrations 0022-0026 are for).
    code, out, err = _run(capsys, baseline_db, "--ignore", "SCH")
    assert code == expected, out
    assert "1  Overview" in out


def test_fail_on_moves_the_threshold(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    _execute(baseline_db, ORPHAN_HABIT)
    assert _run(capsys, baseline_db, "--ignore", "SCH", "--fail-on", "critical")[0] == 0
    assert _run(capsys, baseline_db, "--ignore", "SCH", "--fail-on", "never")[0] == 0
    assert _run(capsys, baseline_db, "--ignore", "SCH", "--fail-on", "low")[0] == 1


def test_json_report_has_every_field_and_counts(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    _execute(baseline_db, ORPHAN_PLAN)
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--select", "REF003,BUD001")
    report = json.loads(out)
    assert report["schema_version"] == 1 and report["database"]["alembic_revision"] == "0021_add_habit_completions"
    by_code = {r["code"]: r for r in report["results"]}
    assert by_code["REF003"]["count"] == 1 and by_code["REF003"]["sample"] == ["00000000-0000-0000-0000-0000000000b1"]
    assert by_code["REF003"]["fix"] == {"available": True, "safety": "safe"}
    assert by_code["BUD001"]["status"] == "pass"  # spent 0, no transactions: consistent
    assert report["summary"]["critical"] == 1 and report["summary"]["rules_run"] == 2


def test_output_folder_gets_one_file_per_format(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                tmp_path: Path) -> None:
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--format", "html", "--format", "junit",
                          "--format", "prometheus", "--format", "text", "--output", str(tmp_path))
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".html", ".json", ".prom", ".txt", ".xml"]
    assert err.count("report written to") == 5
    assert "1  Overview" in out  # the terminal still shows the text report


def test_output_with_a_trailing_slash_is_a_folder(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                                  tmp_path: Path) -> None:
    """`--output reports/` (the README's example) makes the folder and writes the report inside it."""
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--output", f"{tmp_path}/reports/")
    assert code == 1, err  # the empty baseline's missing foreign keys (SCH001) are high
    assert (tmp_path / "reports").is_dir() and [p.suffix for p in (tmp_path / "reports").iterdir()] == [".json"]


def test_check_writes_nothing(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    def fingerprint() -> tuple[object, ...]:
        with connect(baseline_db) as conn:
            row = conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone()
            schemas = conn.execute("SELECT count(*) FROM pg_namespace").fetchone()
        return (row, schemas)

    before = fingerprint()
    _run(capsys, baseline_db)
    assert fingerprint() == before


@pytest.mark.parametrize("args", [
    ["--select", "NOPE"], ["--ignore", "XYZ999"], ["--since", "7 parsecs"], ["--since", "0d"],
    ["--sample", "-1"], ["--budget-days", "0"], ["--statement-timeout", "soon"], ["--format", "pdf"],
    ["--output", "/no/such/folder/r.json"], ["--format", "json", "--format", "html", "--output", "/tmp/x.json"],
])
def test_bad_values_are_one_line_and_exit_3(capsys: pytest.CaptureFixture[str], baseline_db: Database,
                                            args: list[str]) -> None:
    code, out, err = _run(capsys, baseline_db, *args)
    assert code == 3 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def test_statement_timeout_turns_one_rule_into_an_error(capsys: pytest.CaptureFixture[str],
                                                        baseline_db: Database) -> None:
    _execute(baseline_db, "INSERT INTO users (id, email, password_hash) SELECT gen_random_uuid(), 'u' || g || "
                          "'@x.org', 'h' FROM generate_series(1, 300000) g")
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--select", "DUP001", "--statement-timeout",
                          "1ms")
    (result,) = json.loads(out)["results"]
    assert result["status"] == "error" and "statement timeout" in result["reason"]


def test_the_rules_statement_timeout_never_cancels_a_statement_of_the_checks_own(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, baseline_db: Database) -> None:
    """With two connections the passes run serial plans; that setting is made in each pass, with its
    search_path, so --statement-timeout can cost one pass at worst, never the check (CI's load once made the
    engine's own set_config between the passes exceed a 1 ms limit: the check stopped with no report). Here
    the first of those statements is made slower than the limit."""
    import psycopg

    real = psycopg.Cursor.execute
    slowed: list[str] = []

    def execute(cur: psycopg.Cursor, query: object, *a: object, **k: object) -> object:
        text = query.decode() if isinstance(query, bytes) else str(query)
        if "max_parallel_workers_per_gather" in text and not slowed:
            slowed.append(text)
            query = f"SELECT pg_sleep(0.5); {text}"
        return real(cur, query, *a, **k)  # type: ignore[arg-type]

    _execute(baseline_db, ORPHAN_HABIT)
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--select", "REF,NUL", "--fail-on", "never")
    clean = {(r["code"], r["table"]): r["status"] for r in json.loads(out)["results"]}
    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--select", "REF,NUL", "--fail-on", "never",
                          "--statement-timeout", "200ms")
    assert slowed and out, err  # a report (before: "unexpected QueryCanceled" and none)
    report = json.loads(out)
    assert len({p["connection"] for p in report["passes"]}) == 2
    found = {(r["code"], r["table"]): r["status"] for r in report["results"]}
    # The pass whose statement was slowed is in `error`, or (a pass of several rules) read again rule by rule,
    # each then in time: either way the other results are the clean run's.
    errors = {key for key, status in found.items() if status == "error"}
    assert all("statement timeout" in r["reason"] for r in report["results"] if r["status"] == "error")
    assert code == (3 if errors else 0)
    assert {key: status for key, status in found.items() if key not in errors} == {
        key: status for key, status in clean.items() if key not in errors}
    assert clean[("REF005", "habits")] == "fail"


def test_a_failing_rule_is_an_error_and_the_others_still_run(capsys: pytest.CaptureFixture[str],
                                                             baseline_db: Database) -> None:
    # A column of an unexpected type makes AMT001's predicate fail; the other transaction rules share its scan.
    _execute(baseline_db, "ALTER TABLE transactions ALTER COLUMN currency TYPE integer USING NULL")
    code, out, err = _run(capsys, baseline_db, "--format", "json", "--select", "AMT,TIM001")
    statuses = {r["code"]: (r["status"], r["reason"]) for r in json.loads(out)["results"]}
    assert statuses["AMT001"][0] == "error" and "integer" in statuses["AMT001"][1]
    assert {code: s for code, (s, _) in statuses.items() if code != "AMT001"} == {
        "AMT002": "pass", "AMT003": "pass", "AMT004": "pass", "AMT005": "pass", "AMT006": "pass", "TIM001": "pass"}


def test_a_database_without_the_mita_tables_is_an_error(capsys: pytest.CaptureFixture[str],
                                                        empty_db: Database) -> None:
    code, out, err = _run(capsys, empty_db)
    assert code == 3 and "none of the MITA tables" in err and len(err.strip().splitlines()) == 1
