"""The reports of `mita-integrity check`: one `Report` value rendered as text, JSON, HTML, JUnit or Prometheus.

Every renderer first masks e-mail addresses (`masking.masked_report`), so no format can leak one.

May import: repair, check, runs, database, findings, wording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..database.errors import UsageError
from ..findings import Report
from .html_page import render_html
from .json_report import render_json
from .junit_xml import render_junit
from .layout import as_utc
from .masking import mask_email, masked_report
from .next_steps import revised
from .prometheus_metrics import render_prometheus
from .text import render_text

if TYPE_CHECKING:
    from ..runs.findings_history import Trend

FORMATS: tuple[str, ...] = ("text", "json", "html", "junit", "prometheus")

EXTENSIONS: dict[str, str] = {"text": "txt", "json": "json", "html": "html", "junit": "xml", "prometheus": "prom"}

__all__ = ["EXTENSIONS", "FORMATS", "file_name", "mask_email", "render"]


def _known(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {fmt!r}", f"choose one of {', '.join(FORMATS)}")
    return fmt


def render(report: Report, fmt: str, *, color: bool = False, trend: Trend | None = None) -> str:
    """Gives the report in the format `fmt` (one of FORMATS); `color` only affects text.

    `trend` (the history of recorded checks, `history.trend`) only affects HTML: the page then charts the
    failing counts per run up to this report's run and lists what is new since the previous one.
    """
    fmt = _known(fmt)
    report = revised(masked_report(report))
    if fmt == "text":
        return render_text(report, color=color)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report, trend=trend)
    if fmt == "junit":
        return render_junit(report)
    return render_prometheus(report)


def file_name(report: Report, fmt: str) -> str:
    """Gives the report's default file name, e.g. `mita-integrity-20261125T021500Z.json` (start, in UTC)."""
    stamp = as_utc(report.started_at).strftime("%Y%m%dT%H%M%SZ")
    return f"mita-integrity-{stamp}.{EXTENSIONS[_known(fmt)]}"
