"""The report renderers of `mita-integrity check`: every format from one synthetic report, no database."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mita_integrity.database.errors import UsageError
from mita_integrity.findings import SECTIONS, Report, Severity, Status
from mita_integrity.report import EXTENSIONS, FORMATS, file_name, mask_email, render

from .report_samples import FINISHED, MASKED_URL, RUN_ID, keys, prometheus_value, result, sample_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def report() -> Report:
    return sample_report()


def test_the_sample_covers_every_status_severity_and_section(report: Report) -> None:
    assert {r.status for r in report.results} == set(Status)
    assert {r.severity for r in report.results if r.failed} == set(Severity)
    assert {r.section for r in report.results} == set(SECTIONS) - {1, 2, 13}
    assert len([r for r in report.results if r.code == "REF010"]) >= 3
    assert all(r.reason for r in report.results if r.status in (Status.SKIPPED, Status.GUARANTEED, Status.ERROR))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_and_file_names_carry_the_run_time(report: Report, fmt: str) -> None:
    assert render(report, fmt).endswith("\n")
    assert file_name(report, fmt) == f"mita-integrity-20261125T021500Z.{EXTENSIONS[fmt]}"


def test_file_name_converts_the_start_to_utc(report: Report) -> None:
    east = dataclasses.replace(report, started_at=report.started_at.astimezone(timezone(timedelta(hours=3))))
    assert file_name(east, "junit") == "mita-integrity-20261125T021500Z.xml"


def test_unknown_format_is_a_usage_error(report: Report) -> None:
    with pytest.raises(UsageError, match="unknown report format 'yaml'"):
        render(report, "yaml")
    with pytest.raises(UsageError):
        file_name(report, "pdf")


# --- text ------------------------------------------------------------------------------------------

def test_text_has_header_sections_in_order_and_verdict(report: Report) -> None:
    text = render(report, "text")
    for needle in ("mita-integrity 0.1.0", MASKED_URL, "PostgreSQL 15.8", "0021_add_habit_completions", RUN_ID,
                   "2026-11-25 02:15:00 UTC", "12.3 s"):
        assert needle in text
    positions = [text.index(f"{n:>2}  {title}") for n, title in SECTIONS.items()]
    assert positions == sorted(positions)
    assert "failing    5 critical · 16 high · 11 medium · 4 low · 4 info" in text
    assert text.rstrip().endswith("worst finding: critical; 1 rule could not run")


def test_text_lines_are_plain_and_fit_120_columns(report: Report) -> None:
    text = render(report, "text")
    assert not ANSI.search(text)
    assert max(len(line) for line in text.splitlines()) <= 120


def test_text_shows_failing_worst_first_with_sample_and_hint(report: Report) -> None:
    text = render(report, "text")
    section4 = text[text.index(" 4  Orphaned records"): text.index(" 5  Duplicates")]
    tags = re.findall(r"^    (CRITICAL|HIGH|MEDIUM|LOW|INFO|ERROR|PASS|GUARANTEED|SKIPPED) ", section4, re.M)
    assert tags[:3] == ["CRITICAL"] * 3 and tags.index("MEDIUM") > tags.index("HIGH")
    assert tags[-3:] == ["ERROR", "PASS", "SKIPPED"]
    assert "REF010  moods.user_id" in section4 and "REF010  push_tokens.user_id" in section4
    assert "6 rules pass: REF002 REF005 REF007 REF010×2 REF011" in section4
    assert "statement timeout" in section4 and "table ai_analysis_snapshots does not exist" in section4
    assert "run `mita-integrity rules REF001` for what it means and how to repair it" in section4
    assert keys("REF001/transactions", 1)[0] in section4 and "(+8 more)" in section4
    assert '" "' in section4  # a blank varchar key is shown quoted, not as nothing


def test_text_duplicates_show_groups_and_guaranteed_show_their_constraint(report: Report) -> None:
    text = render(report, "text")
    assert "DUP002  daily_plan    14 surplus rows in 9 groups" in text
    assert "GUARANTEED AMT005  daily_plan.planned_amount  validated CHECK constraint" in text


def test_text_section_13_says_whether_a_window_was_asked_for(report: Report) -> None:
    assert "not requested (use --since 7d)" in render(report, "text")
    windowed = render(sample_report(since="7d"), "text")
    assert "rows created in the last 7d" in windowed and "not requested" not in windowed
    parsed = dataclasses.replace(report, options={"since": timedelta(hours=36)})
    assert "rows created in the last 36h" in render(parsed, "text")
    assert "Rows created in the last 36h." in render(parsed, "html")


def test_text_with_nothing_failing(report: Report) -> None:
    clean = sample_report(results=(result("REF001", "orphans", 4, Severity.CRITICAL, Status.PASS, "transactions"),))
    text = render(clean, "text")
    assert "no results in this section" in text and "1 rule passes: REF001" in text
    assert text.rstrip().endswith("no failing rules")


def test_text_in_colour_carries_ansi_codes_and_the_same_words(report: Report) -> None:
    coloured = render(report, "text", color=True)
    assert ANSI.search(coloured)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).split() == render(report, "text").split()


# --- json ------------------------------------------------------------------------------------------

NULLABLE_STR = (str, type(None))
NULLABLE_INT = (int, type(None))
TOP = {"schema_version": int, "tool": dict, "run_id": str, "started_at": str, "finished_at": str,
       "duration_ms": int, "database": dict, "tables": list, "summary": dict, "results": list}
DATABASE = {"url": str, "name": str, "server_version": str, "user": str, "alembic_revision": NULLABLE_STR}
TABLE = {"name": str, "live_rows": int, "dead_rows": int, "last_vacuum": NULLABLE_STR,
         "last_autovacuum": NULLABLE_STR}
SUMMARY = {key: int for key in ("critical", "high", "medium", "low", "info", "rules_run", "rules_skipped",
                                "rules_guaranteed")}
RESULT = {"code": str, "name": str, "section": int, "severity": str, "status": str, "table": str,
          "column": NULLABLE_STR, "count": int, "groups": NULLABLE_INT, "message": str, "sample": list,
          "fix": dict, "reason": NULLABLE_STR, "duration_ms": int}


def _check_fields(obj: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    assert set(spec) <= set(obj), f"{where}: missing {set(spec) - set(obj)}"
    for key, kind in spec.items():
        assert isinstance(obj[key], kind) and not isinstance(obj[key], bool), f"{where}.{key}: {obj[key]!r}"


def test_json_has_every_field_design_lists_with_its_type(report: Report) -> None:
    doc = json.loads(render(report, "json"))
    _check_fields(doc, TOP, "report")
    assert doc["schema_version"] == 1 and doc["tool"] == {"name": "mita-integrity", "version": "0.1.0"}
    for stamp in (doc["started_at"], doc["finished_at"]):
        assert datetime.fromisoformat(stamp).tzinfo is not None
    _check_fields(doc["database"], DATABASE, "database")
    for table in doc["tables"]:
        _check_fields(table, TABLE, "table")
    _check_fields(doc["summary"], SUMMARY, "summary")
    assert doc["summary"]["critical"] == 5 and doc["summary"]["rules_guaranteed"] == 4
    for item in doc["results"]:
        _check_fields(item, RESULT, item["code"])
        assert 1 <= item["section"] <= 14
        assert item["severity"] in {s.value for s in Severity} and item["status"] in {s.value for s in Status}
        assert all(isinstance(key, str) for key in item["sample"])
        assert isinstance(item["fix"]["available"], bool) and item["fix"]["safety"] in {"safe", "unsafe", "none"}
        assert (item["groups"] is not None) == item["code"].startswith("DUP")
        if item["status"] in ("skipped", "guaranteed", "error"):
            assert item["reason"]
    assert len(doc["results"]) == len(report.results)


# --- e-mail masking --------------------------------------------------------------------------------

def test_mask_email() -> None:
    assert mask_email("john.doe@example.com") == "j***@example.com"
    detail = "Key (email)=(Jane@Mail.Example.org) already exists"
    assert mask_email(detail) == "Key (email)=(J***@Mail.Example.org) already exists"
    assert mask_email("j***@example.com") == "j***@example.com"
    url = "postgresql://postgres.ref:***@db.example.com:5432/x"
    assert mask_email(url) == url
    assert mask_email("7c9e6679-7425-40de-944b-e07fc1f90ae7") == "7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_format_shows_an_email_address(fmt: str) -> None:
    leaky = (
        result("DUP001", "users sharing an e-mail", 5, Severity.CRITICAL, Status.FAIL, "users", "email", 2,
               "users whose e-mail matches jdoe@example.com", groups=1,
               sample=("john.doe@example.com", "JOHN.DOE@example.com ")),
        result("NUL001", "user without e-mail", 3, Severity.HIGH, Status.ERROR, "users", "email",
               reason='duplicate key value violates unique constraint "uq" DETAIL: (email)=(ann@corp.io)'),
    )
    out = render(sample_report(results=leaky), fmt)
    assert "john.doe@" not in out and "JOHN.DOE@" not in out and "jdoe@" not in out and "ann@" not in out
    if fmt != "prometheus":  # metrics carry counts, not samples
        assert "j***@example.com" in out and "a***@corp.io" in out


# --- html ------------------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Collects what a self-contained page must not have and what it must."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.tags: list[str] = []
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "meta" and found.get("name") == "viewport":
            self.viewport = True
        for name in ("src", "href"):
            value = found.get(name) or ""
            if name in found and not value.startswith("#"):
                self.external.append(f"<{tag} {name}={value}>")


def test_html_is_self_contained_and_escaped(report: Report) -> None:
    hostile = result("NUL004", "transaction without category", 3, Severity.HIGH, Status.FAIL, "transactions",
                     "category", 1, '<script>alert("x")</script> & more', sample=("<b>key</b>",))
    page = render(dataclasses.replace(report, results=(*report.results, hostile)), "html")
    parser = _Page()
    parser.feed(page)
    assert parser.viewport and parser.external == []
    assert parser.tags.count("script") == 1 and parser.tags.count("style") == 1
    assert "@import" not in page and "url(" not in page and "http://" not in page.replace(MASKED_URL, "")
    assert '<script>alert("x")</script>' not in page and "&lt;script&gt;" in page and "&lt;b&gt;key" in page


def test_html_has_cards_sections_badges_reasons_and_footer(report: Report) -> None:
    page = render(report, "html")
    for severity, n in (("critical", 5), ("high", 16), ("medium", 11), ("low", 4), ("info", 4)):
        assert re.search(rf'<div class="card {severity} nonzero">\s*<span class="n">{n}</span>', page)
    for number, title in SECTIONS.items():
        assert f'<span class="num">{number}</span>{title}' in page
    assert page.count('class="results sortable"') == 11  # every rule section but 13, which is empty
    assert 'class="badge st-guaranteed"' in page and 'class="badge st-error"' in page
    assert "validated CHECK constraint ck_daily_plan_planned_amount_nonneg" in page
    assert "statement timeout" in page and "table ai_analysis_snapshots does not exist" in page
    assert "Not requested (use --since 7d)." in page
    assert f"<code>{keys('REF001/transactions', 1)[0]}</code>" in page
    assert "<code>mita-integrity rules REF001</code>" in page
    assert "generated by mita-integrity 0.1.0 at 2026-11-25 02:15:12 UTC" in page
    assert render(report, "html") == page  # no wall clock: the same report gives the same page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Measures the page as chromium lays it out (issue 16, items 13 and 14), and writes the findings into the DOM,
# which --dump-dom then prints: a status badge that reaches past its cell or over the severity dot, a table
# name broken inside a word, and the row counts' columns (hidden, scrolling, and the cue that says so).
MEASURE = """<script>
window.addEventListener("load", function () {
  var out = {overlaps: [], midword: [], hidden: 0, scrolls: false, cue: false, fade: false, rows: 0};
  document.querySelectorAll("table.results tr.row").forEach(function (tr) {
    var badge = tr.cells[0].querySelector(".badge"), sev = tr.cells[1].querySelector(".sev");
    var b = badge.getBoundingClientRect(), s = sev.getBoundingClientRect();
    var cell = tr.cells[0].getBoundingClientRect(), inTable = getComputedStyle(tr.cells[0]).display === "table-cell";
    out.rows += 1;
    var beside = b.bottom > s.top && b.top < s.bottom;
    if ((inTable && b.right > cell.right) || (beside && b.right > s.left - 2)) {
      out.overlaps.push(badge.textContent.trim() + " " + tr.cells[2].textContent.trim().split(" ")[0]);
    }
  });
  document.querySelectorAll("td.table").forEach(function (td) {
    var walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT), node, top = null, last = "";
    while ((node = walker.nextNode())) {
      for (var i = 0; i < node.data.length; i++) {
        var range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
        var rect = range.getClientRects()[0];
        if (!rect) { continue; }
        if (top !== null && rect.top > top + 2 && "_.".indexOf(last) < 0) { out.midword.push(td.textContent); }
        top = rect.top; last = node.data[i];
      }
    }
  });
  var panel = document.querySelector(".stats-panel") || document.querySelector("table.stats").parentElement;
  document.querySelectorAll("table.stats th, table.stats td").forEach(function (c) {
    if (getComputedStyle(c).display === "none") { out.hidden += 1; }
  });
  out.scrolls = panel.scrollWidth > panel.clientWidth + 1;
  var cue = document.querySelector(".scroll-cue");
  out.cue = !!cue && getComputedStyle(cue).display !== "none" && cue.getBoundingClientRect().height > 0;
  var wrap = document.querySelector(".stats-wrap");
  out.fade = !!wrap && getComputedStyle(wrap, "::after").content !== "none";
  document.body.setAttribute("data-layout", JSON.stringify(out));
});
</script>"""


def _chromium_or_skip() -> str:
    browser = _chromium()
    if browser is None:
        if os.environ.get("MITA_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("MITA_TEST_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no headless chromium on PATH (apt-get install chromium); set MITA_TEST_REQUIRE_BROWSER=1 to fail")
    return browser


def _headless(browser: str, width: int, page: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="mita-chromium-") as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},2000", *extra, page.as_uri()],
            check=True, capture_output=True, text=True, timeout=120,
        )
    return done.stdout


def _with_long_names(report: Report) -> Report:
    """The sample, plus results on the longest table names of the MITA schema (they wrapped mid-word)."""
    extra = (result("REF010", "orphaned rows", 4, Severity.HIGH, Status.FAIL, "user_financial_profiles", "user_id", 3),
             result("SCH006", "fk without index", 11, Severity.LOW, Status.FAIL, "ai_analysis_snapshots", "user_id", 1))
    return dataclasses.replace(report, results=report.results + extra)


@pytest.mark.parametrize(("label", "width"), [("desktop", 1280), ("phone", 400)])
def test_html_screenshot_in_headless_chromium(report: Report, label: str, width: int) -> None:
    """The screenshots at 1280 and 400 px are kept in artifacts/ (issue 16: look at them)."""
    browser = _chromium_or_skip()
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / f"report-{label}.html"
    page.write_text(render(_with_long_names(report), "html"), encoding="utf-8")
    shot = ARTIFACTS / f"report-{label}.png"
    shot.unlink(missing_ok=True)
    _headless(browser, width, page, f"--screenshot={shot}")
    # A blank 1280×2000 page is already ~10 KB: demand far more, so a page that failed to load fails here.
    assert shot.exists() and shot.stat().st_size > 40_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("width", [1280, 400])
def test_html_layout_in_headless_chromium(report: Report, width: int, tmp_path: Path) -> None:
    """Issue 16, item 13: no status badge covers the severity dot; table names wrap between words; at 400 px
    the row counts keep all five columns and scroll sideways, with a cue in words and a fade at the edge."""
    browser = _chromium_or_skip()
    page = tmp_path / "measured.html"
    page.write_text(render(_with_long_names(report), "html").replace("</body>", MEASURE + "</body>"),
                    encoding="utf-8")
    dom = _headless(browser, width, page, "--virtual-time-budget=5000", "--dump-dom")
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, dom[-500:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert layout["rows"] > 50
    assert layout["overlaps"] == [] and layout["midword"] == []
    assert layout["hidden"] == 0  # no column of the row counts is hidden
    if width <= 720:
        assert layout["scrolls"] and layout["cue"] and layout["fade"]
    else:
        assert not layout["scrolls"] and not layout["cue"]


def test_html_informational_results_have_their_own_badge_and_do_not_fail(report: Report) -> None:
    """Issue 16, item 14: SDL001, CAL002, USR003 are information, not failures."""
    page = render(report, "html")
    soft_deletion = page[page.index('<section id="s10">'):page.index('<section id="s11">')]
    assert 'class="badge st-info">info</span>' in soft_deletion
    assert re.search(r'class="pill badge low">1 failing</span>', soft_deletion)  # SDL002 only
    assert 'class="pill badge st-info">2 informational</span>' in soft_deletion
    calendar = page[page.index('<section id="s14">'):page.index("</main>")]
    assert 'class="pill badge medium">1 failing</span><span class="pill badge st-info">1 informational</span>' in (
        calendar)  # CAL001 fails; CAL002 is information
    for code in ("SDL001", "CAL002", "USR003"):
        at = page.index(f'<span class="code">{code}</span>')
        row = page[at - 700:at]
        assert 'badge st-info">info</span>' in row and ">fail</span>" not in row.split("<tr")[-1], code


# --- junit -----------------------------------------------------------------------------------------

def test_junit_parses_back_with_the_right_counts(report: Report) -> None:
    root = ET.fromstring(render(report, "junit"))
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert int(root.get("tests", "")) == len(cases) == len(report.results)
    assert int(root.get("failures", "")) == len(root.findall(".//failure")) == sum(r.failed for r in report.results)
    assert int(root.get("errors", "")) == len(root.findall(".//error")) == 1
    assert int(root.get("skipped", "")) == len(root.findall(".//skipped")) == 6
    assert float(root.get("time", "")) == pytest.approx(12.345)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [SECTIONS[n] for n in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14)]
    for suite in suites:
        assert int(suite.get("tests", "")) == len(suite.findall("testcase"))
        assert int(suite.get("failures", "")) == len(suite.findall("testcase/failure"))
    moods = root.find(".//testcase[@name='REF010 moods']")
    assert moods is not None and moods.get("classname") == "mita_integrity.orphaned_records"
    failure = moods.find("failure")
    assert failure is not None and failure.get("type") == "high" and "count: 7 rows" in (failure.text or "")
    assert "hint: run `mita-integrity rules REF010`" in (failure.text or "")
    guaranteed = root.find(".//testcase[@name='AMT005 daily_plan']/skipped")
    assert guaranteed is not None and "ck_daily_plan_planned_amount_nonneg" in guaranteed.get("message", "")


def test_junit_survives_control_characters_in_an_error() -> None:
    broken = result("REF001", "orphans", 4, Severity.CRITICAL, Status.ERROR, "transactions",
                    reason="server sent \x00\x07 garbage")
    root = ET.fromstring(render(sample_report(results=(broken,)), "junit"))
    assert root.get("errors") == "1"


# --- prometheus ------------------------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)"
SAMPLE_LINE = re.compile(rf"^({_NAME})(?:\{{{_LABEL}(?:,{_LABEL})*\}})? {_VALUE}(?: -?\d+)?$")
HELP_LINE = re.compile(rf"^# HELP ({_NAME}) .*$")
TYPE_LINE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")


def test_prometheus_lines_follow_the_exposition_grammar(report: Report) -> None:
    text = render(report, "prometheus")
    typed: set[str] = set()
    seen: set[str] = set()
    for line in text.rstrip("\n").split("\n"):
        if match := TYPE_LINE.match(line):
            typed.add(match.group(1))
        elif not HELP_LINE.match(line):
            sample = SAMPLE_LINE.match(line)
            assert sample, f"not exposition format: {line!r}"
            assert sample.group(1) in typed, f"sample before its TYPE: {line!r}"
            series = line.rsplit(" ", 1)[0]
            assert series not in seen, f"repeated series: {series}"
            seen.add(series)
    def value(name: str, **labels: str) -> float:
        return prometheus_value(text, f"mita_integrity_{name}", **labels)

    assert value("violations", code="REF010", severity="high", table="moods") == 7
    assert value("violations", code="REF002", severity="critical", table="goals") == 0
    assert math.isnan(value("violations", code="REF011", severity="medium", table="user_profiles"))
    assert value("rule_status", code="AMT005", table="daily_plan", status="guaranteed") == 1
    assert value("findings", severity="critical") == 5
    assert value("check_duration_seconds") == 12.345
    assert value("last_run_timestamp_seconds") == FINISHED.timestamp()


def test_prometheus_escapes_label_values() -> None:
    odd = result("SCH006", "fk without index", 11, Severity.LOW, Status.FAIL, 'we"ird\\tab\nle', None, 1)
    text = render(sample_report(results=(odd,)), "prometheus")
    assert 'table="we\\"ird\\\\tab\\nle"' in text
    assert prometheus_value(text, "mita_integrity_violations", code="SCH006", severity="low",
                            table='we"ird\\tab\nle') == 1
    assert all(SAMPLE_LINE.match(line) or line.startswith("#") for line in text.rstrip("\n").split("\n"))


def test_prometheus_parses_with_the_official_client(report: Report) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(render(report, "prometheus"))}
    assert {name: f.documentation for name, f in families.items()} == {  # dashboards read these: unchanged
        "mita_integrity_violations": "Violating rows a rule found on a table (NaN when it errored; a pass counts 0, "
                                     "or a fail_above backlog).",
        "mita_integrity_rule_status": "1 for the status (pass, fail, skipped, guaranteed, error) of a rule on a table "
                                      "in the last run.",
        "mita_integrity_findings": "Failing results per severity in the last run.",
        "mita_integrity_check_duration_seconds": "How long the last check run took.",
        "mita_integrity_last_run_timestamp_seconds": "When the last check run finished (unix time)."}
    assert all(f.type == "gauge" for f in families.values())
    assert len(families["mita_integrity_rule_status"].samples) == len(report.results)
    findings = {s.labels["severity"]: s.value for s in families["mita_integrity_findings"].samples}
    assert findings == {sev.value: report.summary()[sev.value] for sev in Severity}
