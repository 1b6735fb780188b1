"""The HTML report: one self-contained page (inline CSS and JS, nothing fetched), readable on a phone."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup, escape

from ..findings import SECTIONS, Report, Result, Severity, Status
from . import layout, trends

if TYPE_CHECKING:
    from ..runs.findings_history import Trend


@dataclass(frozen=True)
class Row:
    """One result as a table row: display text plus the keys the inline script sorts by."""

    result: Result
    target: str
    count_label: str
    note: str  # the hint of a failing result, the reason of any other non-passing one
    status_rank: int
    fix: str

    @property
    def shows_count(self) -> bool:
        return self.result.status in (Status.FAIL, Status.PASS)

    @property
    def label(self) -> str:
        """Gives the status badge's word: an informational finding is `info`, not a failure."""
        return "info" if informational(self.result) else self.result.status.value


def informational(result: Result) -> bool:
    """Tells whether a result is information (a failing rule of severity info): its own badge, never failing."""
    return result.status is Status.FAIL and result.severity is Severity.INFO


@dataclass(frozen=True)
class SectionView:
    """One rule section as the page shows it: its rows, how many fail and how badly."""

    number: int
    title: str
    anchor: str
    rows: tuple[Row, ...]
    failing: int  # failing results, information not counted
    worst: Severity | None
    note: str | None  # said instead of (or above) the table, e.g. the --since window
    informational: int = 0


@dataclass(frozen=True)
class TableRow:
    """One line of the row counts (section 2)."""

    name: str
    live_rows: int
    dead_rows: int
    dead_share: float
    last_vacuum: str


def _row(result: Result) -> Row:
    if result.status is Status.FAIL:
        note = layout.hint(result)
    elif result.status is Status.PASS:
        note = result.reason or ""  # a backlog the project file accepts (fail_above) says so
    else:
        note = result.reason or "(no reason given)"
    fix = f"{result.fix_safety.value} repair" if result.fix_available else "no automatic repair"
    rank = layout.STATUS_ORDER[result.status]
    return Row(result, layout.target(result), layout.count_label(result), note, rank, fix)


def _sections(report: Report) -> list[SectionView]:
    window = layout.since_window(report)
    views = []
    for section in layout.by_section(report):
        note = None
        if section.number == layout.RECENT_DATA_SECTION:
            note = f"Rows created in the last {window}." if window else "Not requested (use --since 7d)."
        elif section.empty:
            note = "No results in this section."
        failing = [r for r in section.failing if not informational(r)]
        worst = min((r.severity for r in failing), key=lambda s: s.rank, default=None)
        views.append(SectionView(section.number, section.title, f"s{section.number}",
                                 tuple(_row(r) for r in section.results), len(failing), worst, note,
                                 len(section.failing) - len(failing)))
    return views


def _tables(report: Report) -> list[TableRow]:
    rows = []
    for t in report.tables:
        total = t.live_rows + t.dead_rows
        moments = [m for m in (t.last_vacuum, t.last_autovacuum) if m]
        last = layout.utc_text(max(moments, key=layout.as_utc)) if moments else "never"
        rows.append(TableRow(t.name, t.live_rows, t.dead_rows, t.dead_rows / total if total else 0.0, last))
    return rows


_TICKS = re.compile(r"`([^`]+)`")


def _ticks(text: str) -> Markup:
    """Gives the text escaped, with `backticked` commands set in <code>."""
    return Markup(_TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


def _breakable(name: str) -> Markup:
    """Gives an identifier escaped, with a line-break opportunity after each underscore (not inside a word)."""
    return Markup("_<wbr>".join(str(escape(part)) for part in name.split("_")))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mita_integrity.report", "templates"),
        autoescape=True,  # every value, messages and reasons included, comes from the database
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ticks"] = _ticks
    env.filters["breakable"] = _breakable
    return env


def mode_text(report: Report) -> str:
    from .text import mode_text as said

    return said(report)


def render_html(report: Report, *, generated_at: datetime | None = None, trend: Trend | None = None) -> str:
    """Gives the whole HTML page of the report; with `trend` (the recorded history) it shows the trends too."""
    summary = report.summary()
    errors = sum(r.status is Status.ERROR for r in report.results)
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        version=report.tool_version or "(unknown version)",
        database=report.database,
        started=layout.utc_text(report.started_at),
        finished=layout.utc_text(report.finished_at),
        duration=layout.duration_text(report.duration_ms),
        mode=mode_text(report) if "mode" in report.options else None,
        severities=layout.severity_counts(report),
        summary=summary,
        errors=errors,
        worst=report.worst(),
        verdict=layout.verdict(report),
        overview_title=SECTIONS[1],
        row_counts_title=SECTIONS[2],
        tables=_tables(report),
        sections=_sections(report),
        # The run's end, not the wall clock: the same report always renders to the same page.
        generated=layout.utc_text(generated_at or report.finished_at),
        trends=trends.build(trend, report) if trend is not None else None,
    )
