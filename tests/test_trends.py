"""Trends of recorded checks: the history's counts, the HTML charts, `runs --show`, and Chromium's view of it.

Against a real PostgreSQL: four checks are recorded while orphans come and go — a clean database; one
orphaned habit; three; then the habits gone and two orphaned calendar rows instead — and every view of
that history is read back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect, transaction
from mita_integrity.database.urls import build_url
from mita_integrity.findings import Report, Severity
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.undo import undo_run
from mita_integrity.report import render, trends
from mita_integrity.report.stored import report_from_json
from mita_integrity.runs import findings_history as history
from mita_integrity.runs.findings_history import Trend

from .report_samples import sample_report

HABIT = "INSERT INTO habits (id, user_id, title) VALUES (gen_random_uuid(), gen_random_uuid(), 'x')"
PLAN = ("INSERT INTO daily_plan (id, user_id, date, category) "
        "VALUES (gen_random_uuid(), gen_random_uuid(), '2020-01-11 00:00+00', 'food')")


def _sql(db: Database, *statements: str) -> None:
    with connect(db) as conn:
        for statement in statements:
            conn.execute(statement.encode())
        conn.commit()


def _url(db: Database) -> str:
    return build_url(db.parsed.params, mask_password=False)


def _trend(db: Database, until: str | None = None, limit: int = 30) -> Trend:
    with connect(db) as conn, transaction(conn, read_only=True) as cur:
        return history.trend(cur, limit, until)


@dataclass
class History:
    db: Database
    reports: list[Report]

    @property
    def ids(self) -> list[str]:
        return [r.run_id for r in self.reports]

    def record(self) -> Report:
        report = run_check(self.db, CheckRequest())
        with connect(self.db) as conn:
            history.record(conn, report)
        self.reports.append(report)
        return report


@pytest.fixture
def recorded(baseline_db: Database) -> History:
    """Four recorded checks: clean; 1 orphaned habit; 3; the habits gone and 2 orphaned calendar rows."""
    h = History(baseline_db, [])
    h.record()
    _sql(baseline_db, HABIT)
    h.record()
    _sql(baseline_db, HABIT, HABIT)
    h.record()
    _sql(baseline_db, "DELETE FROM habits", PLAN, PLAN)
    h.record()
    return h


def _failing(report: Report) -> dict[str, int]:
    return {history.fingerprint(r.code, r.table): r.count for r in report.results if r.failed}


# --- the history's counts --------------------------------------------------------------------------


def test_the_trend_has_each_runs_counts(recorded: History) -> None:
    trend = _trend(recorded.db)
    assert [run_id for run_id, _ in trend.runs] == recorded.ids
    assert trend.counts["REF005:habits"] == (0, 1, 3, 0)
    assert trend.counts["REF003:daily_plan"] == (0, 0, 0, 2)
    base = len(_failing(recorded.reports[0]))
    assert trend.totals == (base, base + 1, base + 1, base + 1)
    assert trend.totals == tuple(len(_failing(r)) for r in recorded.reports)
    for i, report in enumerate(recorded.reports):  # every failing count of every run, as the check saw it
        assert {fp: c[i] for fp, c in trend.counts.items() if c[i]} == _failing(report)
    until = _trend(recorded.db, until=recorded.ids[2])
    assert [r for r, _ in until.runs] == recorded.ids[:3] and until.counts["REF005:habits"] == (0, 1, 3)
    assert "REF003:daily_plan" not in until.counts  # it never failed up to that run
    assert _trend(recorded.db, limit=2).counts["REF005:habits"] == (3, 0)


# --- the HTML --------------------------------------------------------------------------------------


def _spark(page: str, fp: str) -> str:
    """Gives the data-counts of the sparkline in the trend table's row of `fp`."""
    found = re.search(rf'<tr class="row [^"]*" data-fingerprint="{re.escape(fp)}">.*?<svg class="spark [a-z]+" '
                      rf'[^>]*data-counts="([^"]*)"', page, re.S)
    assert found, f"no sparkline for {fp}"
    return found.group(1)


def _list(page: str, name: str) -> str:
    found = re.search(rf'<ul class="changes {name}">(.*?)</ul>', page, re.S)
    return found.group(1) if found else ""


def test_the_html_charts_the_history_and_lists_what_is_new(recorded: History) -> None:
    third, last = recorded.reports[2], recorded.reports[3]
    page = render(third, "html", trend=_trend(recorded.db, until=third.run_id))
    totals = _trend(recorded.db).totals
    assert f'data-totals="{",".join(map(str, totals[:3]))}"' in page
    assert _spark(page, "REF005:habits") == "0,1,3"
    for fp in _failing(third):  # a sparkline for every failing rule and table
        _spark(page, fp)
    assert page.count('<svg class="spark') == len(_failing(third))  # nothing else failed in runs 1-3
    assert "REF005" in _list(page, "worse-list") and "1 → 3 rows" in _list(page, "worse-list")
    assert "REF005" not in _list(page, "new-list")
    assert "<title>" in page and "3 rows" in page  # tooltips carry the numbers

    page = render(last, "html", trend=_trend(recorded.db))
    assert _spark(page, "REF005:habits") == "0,1,3,0" and _spark(page, "REF003:daily_plan") == "0,0,0,2"
    new = _list(page, "new-list")
    assert "REF003" in new and "daily_plan" in new and "2 rows" in new and "REF005" not in new
    assert "REF005" in _list(page, "resolved-list") and "3 → 0" in _list(page, "resolved-list")
    assert "New since the previous run" in page and recorded.ids[2][:8] in page
    assert '<a href="#trends"' in page and "1 new" in page
    assert re.search(r'<svg class="chart total-chart"[^>]*data-totals="(\d+,){3}\d+"', page)
    assert "http://" not in page.replace(last.database.url, "") and "https://" not in page
    assert render(last, "html", trend=_trend(recorded.db)) == page  # the same history gives the same page


def test_the_first_run_has_nothing_to_compare_with(recorded: History) -> None:
    first = recorded.reports[0]
    page = render(first, "html", trend=_trend(recorded.db, until=first.run_id))
    assert "This is the first recorded run in the history" in page and 'class="changes new-list"' not in page
    assert page.count('<svg class="chart total-chart"') == 1


def test_without_a_trend_the_page_is_the_same_as_before() -> None:
    report = sample_report()
    page = render(report, "html")
    assert 'id="trends"' not in page and "<svg" not in page and "svg.spark" not in page
    assert render(report, "html", trend=None) == page
    for fmt in ("text", "json", "junit", "prometheus"):  # only the HTML shows a trend
        assert render(report, fmt, trend=Trend((), {}, ())) == render(report, fmt)


def test_an_unrecorded_report_is_appended_as_the_newest_run() -> None:
    report = sample_report()
    earlier = report.started_at - timedelta(days=1)
    fp = "NUL003:transactions"
    trend = Trend((("11111111-1111-1111-1111-111111111111", earlier),), {fp: (4,), "GOL005:goals": (2,)}, (2,))
    both = trends.including(trend, report)
    assert [r for r, _ in both.runs] == ["11111111-1111-1111-1111-111111111111", report.run_id]
    assert both.counts[fp] == (4, 17) and both.counts["GOL005:goals"] == (2, 1)
    assert both.totals == (2, sum(r.failed for r in report.results))
    assert both.counts["REF001:transactions"] == (None, 42)  # not evaluated before: a gap, not a zero
    view = trends.build(trend, report)
    assert view is not None and view.previous is not None
    assert {s.code for s in view.new} >= {"REF001"} and fp in {s.fingerprint for s in view.worse}
    later = dataclasses.replace(report, started_at=earlier - timedelta(days=1))  # older than the history
    assert [r for r, _ in trends.including(trend, later).runs] == [report.run_id]


def test_nice_ticks() -> None:
    assert trends.nice_ticks(0) == [0, 1]
    assert trends.nice_ticks(3) == [0, 1, 2, 3]
    assert trends.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert trends.nice_ticks(41) == [0, 10, 20, 30, 40, 50]
    assert trends.nice_ticks(12_345)[-1] >= 12_345 and len(trends.nice_ticks(12_345)) <= 6


def test_a_report_comes_back_from_its_json() -> None:
    report = sample_report()
    doc = json.loads(render(report, "json"))
    again = report_from_json(doc, options=report.options)
    assert again.to_json() == doc and again.options == report.options
    assert again.started_at == report.started_at and again.tables == report.tables
    units = {r.code: r.unit for r in again.results}
    assert units["BUD001"] == "key" and units["REF001"] == "row"  # from the catalogue: the JSON has no unit
    assert next(r for r in again.results if r.code == "GOL001").hint.startswith("`mita-integrity fix")


# --- runs --show -----------------------------------------------------------------------------------


def test_runs_show_lists_a_check_runs_failing_results(recorded: History, capsys: pytest.CaptureFixture[str]) -> None:
    url, run_id = _url(recorded.db), recorded.ids[2]
    assert main(["--db", url, "runs", "--show", run_id[:8]]) == 0
    out = capsys.readouterr().out
    assert f"Check run {run_id} (completed)" in out
    assert re.search(r"REF005\s.*habits\s.*high\s.*\b3\s.*1 \(worse\)", out)
    assert f"compared with the previous check run {recorded.ids[1][:8]}" in out
    for fp in _failing(recorded.reports[2]):
        assert fp.split(":")[0] in out

    assert main(["--db", url, "runs", "--show", recorded.ids[3], "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"]["id"] == recorded.ids[3] and doc["run"]["kind"] == "check"
    assert doc["previous_run"] == recorded.ids[2] and doc["html"] is None
    got = {(r["code"], r["table"]): r for r in doc["results"]}
    assert set(got) == {tuple(fp.split(":")) for fp in _failing(recorded.reports[3])}
    assert {k: got["REF003", "daily_plan"][k] for k in ("severity", "count", "previous", "change")} == \
        {"severity": "critical", "count": 2, "previous": 0, "change": "new"}
    assert ("REF005", "habits") not in got
    ranks = [Severity(r["severity"]).rank for r in doc["results"]]
    assert ranks == sorted(ranks)  # worst first

    assert main(["--db", url, "runs", "--show", recorded.ids[0], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["previous_run"] is None


def test_runs_show_html_is_self_contained_and_renders_in_chromium(
        recorded: History, capsys: pytest.CaptureFixture[str], tmp_path: Path, artifacts: Path) -> None:
    out = tmp_path / "out.html"
    last = recorded.ids[3]
    assert main(["--db", _url(recorded.db), "runs", "--show", last[:12], "--html", str(out)]) == 0
    captured = capsys.readouterr()
    assert "REF003" in captured.out and f"written to {out}" in captured.err
    page = out.read_text(encoding="utf-8")
    assert f'data-totals="{",".join(map(str, _trend(recorded.db).totals))}"' in page
    assert _spark(page, "REF005:habits") == "0,1,3,0" and "REF003" in _list(page, "new-list")
    assert last in page  # the stored report of that run, rebuilt
    refs = _References()
    refs.feed(page)
    assert refs.external == [], refs.external
    database_url = recorded.reports[3].database.url
    assert not re.search(r"https?://", page.replace(database_url, "")), "the page must load nothing"
    assert "@import" not in page and "url(" not in page

    browser = _chromium()
    shot = artifacts / "trends.png"
    shot.unlink(missing_ok=True)
    (artifacts / "trends.html").write_text(page, encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="mita-chromium-") as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
             "--window-size=1280,1800", f"--screenshot={shot}", (artifacts / "trends.html").as_uri()],
            check=True, capture_output=True, text=True, timeout=120,
        )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no script error, no resource that failed to load
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 60_000  # a blank page is ~10 KB; charts, text and colours are far more


def test_runs_show_a_fix_and_an_undo_run(baseline_db: Database, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    _sql(baseline_db, HABIT, HABIT)
    request = FixRequest(select=("REF005",))
    fixed = apply_fix(baseline_db, plan_fix(baseline_db, request), request)
    url = _url(baseline_db)
    assert main(["--db", url, "runs", "--show", fixed.run_id]) == 0
    out = capsys.readouterr().out
    assert f"Fix run {fixed.run_id} (completed)" in out and re.search(r"REF005\s.*habits\s.*safe\s.*2\s+.*2", out)
    assert main(["--db", url, "runs", "--show", fixed.run_id, "--format", "json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert [(r["code"], r["table"], r["changed"], r["after"]) for r in rules] == [("REF005", "habits", 2, 0)]
    assert main(["--db", url, "runs", "--show", fixed.run_id, "--html", str(tmp_path / "x.html")]) == 3
    assert "only a check run has an HTML report" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()

    undone = undo_run(baseline_db, fixed.run_id)
    assert main(["--db", url, "runs", "--show", undone.run_id, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"]["kind"] == "undo" and doc["conflict_count"] == 0
    assert doc["rules"] == [{"code": "REF005", "table": "habits", "action": "delete", "restored": 2}]
    assert main(["--db", url, "runs", "--show", undone.run_id]) == 0
    assert re.search(r"REF005\s.*habits\s.*delete\s.*2", capsys.readouterr().out)


def test_runs_show_refuses_bad_input(baseline_db: Database, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    url = _url(baseline_db)
    assert main(["--db", url, "runs", "--html", str(tmp_path / "x.html")]) == 3
    assert "--html needs --show RUN_ID" in capsys.readouterr().err
    assert main(["--db", url, "runs", "--show", "1234"]) == 3
    assert "is not a run id" in capsys.readouterr().err
    assert main(["--db", url, "runs", "--show", "12345678"]) == 3
    assert "no run history yet" in capsys.readouterr().err
    assert main(["--db", url, "runs", "--show", "12345678", "--html", str(tmp_path / "no" / "x.html")]) == 3
    assert "cannot write the HTML report" in capsys.readouterr().err


# --- check --record --format html ------------------------------------------------------------------


def test_check_record_writes_the_html_with_the_trends(recorded: History, capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    _sql(recorded.db, HABIT)
    out = tmp_path / "report.html"
    args = ["--db", _url(recorded.db), "check", "--record", "--fail-on", "never", "--format", "html",
            "--output", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    trend = _trend(recorded.db)
    assert len(trend.runs) == 5 and trend.counts["REF005:habits"] == (0, 1, 3, 0, 1)
    assert trend.runs[-1][0] in page  # this run, recorded after the page was written, is its newest point
    assert f'data-totals="{",".join(map(str, trend.totals))}"' in page
    assert _spark(page, "REF005:habits") == "0,1,3,0,1" and _spark(page, "REF003:daily_plan") == "0,0,0,2,2"
    assert "REF005" in _list(page, "new-list") and "REF003" not in _list(page, "new-list")

    plain = tmp_path / "plain.html"  # without --record: the page of before, no trends
    assert main([*args[:3], *args[4:-1], str(plain)]) == 0
    assert 'id="trends"' not in plain.read_text(encoding="utf-8")
    assert len(_trend(recorded.db).runs) == 5


# --- helpers ---------------------------------------------------------------------------------------


class _References(HTMLParser):
    """Collects every src/href/xlink:href that points outside the page."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and not (value or "").startswith("#"):
                self.external.append(f"<{tag} {name}={value}>")


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        if os.environ.get("MITA_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("MITA_TEST_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no headless chromium on PATH (apt-get install chromium); set MITA_TEST_REQUIRE_BROWSER=1 to fail")
    return browser
