"""One line per run in `runs`: a fix still at work and one that was cut off read differently."""

from __future__ import annotations

from datetime import UTC, datetime

from mita_integrity.runs.run_history import RunRow, describe


def _fix(status: str, summary: dict[str, object]) -> RunRow:
    return RunRow("1a756534", "fix", status, datetime(2026, 12, 5, tzinfo=UTC), None, "mita", summary)


def test_a_fix_at_work_and_a_fix_cut_off() -> None:
    assert describe(_fix("running", {"archived_so_far": 1})) == "running: 1 row changed and archived so far"
    assert describe(_fix("interrupted", {"archived_so_far": 46_500})) == (
        "stopped before the end: 46,500 rows changed and archived so far (re-run fix to finish, or undo this run)")
    assert describe(_fix("completed", {"changed": 2, "rules": [{"code": "REF001", "changed": 2}]})) == (
        "2 rows changed (REF001)")


# ---------------------------------------------------------------- `runs` at 80 columns (issue 16, item 12)

def _check(run_id: str, summary: dict[str, object]) -> RunRow:
    return RunRow(run_id, "check", "completed", datetime(2026, 12, 5, 2, 0, 7, tzinfo=UTC), None, "mita", summary)


LONG = {"critical": 3, "high": 12, "medium": 7, "low": 2, "info": 4, "rules_run": 61,
        "deliveries": [{"channel": "slack", "ok": False, "sent": 0, "error": "HTTP 500 Internal Server Error from "
                        "https://hooks.slack.com/… (gave up after 4 attempts)"},
                       {"channel": "email", "ok": True, "sent": 1, "error": None}]}


def test_runs_lines_fit_80_columns_with_short_ids_and_the_summary_cut_at_the_end() -> None:
    from mita_integrity.cli.runs import run_lines

    rows = [_check("1a756534-0000-4000-8000-000000000001", LONG),
            RunRow("9f00aa11-0000-4000-8000-000000000002", "fix", "interrupted", datetime(2026, 12, 4, tzinfo=UTC),
                   None, "mita", {"archived_so_far": 46_500})]
    lines = run_lines(rows, 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["id", "started", "(UTC)", "kind", "status", "summary"]
    assert lines[1].startswith("1a756534  2026-12-05 02:00  check  completed    3 critical, 12 high")
    assert lines[1].endswith("…")
    assert lines[2].startswith("          alert slack FAILED: HTTP 500 Internal Server Error")
    assert lines[3].startswith("9f00aa11  2026-12-04 00:00  fix    interrupted  stopped before the end")
    assert len(lines) == 4


def test_runs_lines_on_a_wide_terminal_show_whole_ids_and_whole_summaries() -> None:
    from mita_integrity.cli.runs import run_lines

    [_, line, failed] = run_lines([_check("1a756534-0000-4000-8000-000000000001", LONG)], 300)
    assert line.startswith("1a756534-0000-4000-8000-000000000001  2026-12-05 02:00:07  check")
    assert line.endswith("alerts: slack FAILED (HTTP 500 Internal Server Error from https://hooks.slack.com/… "
                         "(gave up after 4 attempts)), email ok")
    assert "…" not in failed.replace("slack.com/…", "")


def test_short_ids_grow_until_they_tell_the_runs_apart() -> None:
    from mita_integrity.cli.runs import short_ids

    assert short_ids(["1a756534-aaaa", "2b000000-aaaa"]) == 8
    assert short_ids(["1a756534-aaaa", "1a756534-abbb"]) == 11
