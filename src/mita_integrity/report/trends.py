"""The trends of recorded checks in the HTML report: a total chart, a sparkline per finding, what is new.

Drawn here as inline SVG (no charting library, nothing fetched, no script): the colours are the page's CSS
variables, so the charts follow its light and dark schemes, and every bar and point carries a `<title>`
that the browser shows as a tooltip. The input is a `history.Trend` (the failing counts of recorded check
runs, oldest first); the report being rendered is its last run — appended when it was not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from ..findings import Report, Severity
from ..runs.findings_history import Trend, fingerprint
from . import layout
from .charts import nice_ticks, rows_text, sparkline, total_chart
from .run_points import RunPoint, _Fact

CHANGE_LABELS = {"new": "new", "worse": "worse", "better": "better", "same": "unchanged", "resolved": "resolved",
                 "": "—"}


@dataclass(frozen=True)
class Series:
    """One finding (rule on table) over the recorded runs."""

    fingerprint: str
    code: str
    table: str
    name: str
    message: str
    severity: Severity
    unit: str
    counts: tuple[int | None, ...]  # per run, oldest first; None: the rule was not evaluated in that run
    now: int
    previous: int | None  # None: no previous run, or the rule was not evaluated in it
    change: str  # new | worse | better | same | resolved | "" (nothing to compare)
    since: str  # when its current failing streak began
    spark: Markup

    @property
    def failing(self) -> bool:
        return self.now > 0

    @property
    def change_label(self) -> str:
        if self.change in ("worse", "better") and self.previous is not None:
            delta = self.now - self.previous
            return f"+{delta:,}" if delta > 0 else f"−{-delta:,}"
        return CHANGE_LABELS[self.change]

    @property
    def peak(self) -> int:
        return max((c for c in self.counts if c is not None), default=0)

    @property
    def rows_label(self) -> str:
        return rows_text(self.now, self.unit)


@dataclass(frozen=True)
class TrendView:
    """What the page's trend section shows."""

    points: tuple[RunPoint, ...]
    chart: Markup
    series: tuple[Series, ...]  # failing now first (worst, most rows), then the ones resolved in the window
    previous: RunPoint | None

    @property
    def current(self) -> RunPoint:
        return self.points[-1]

    @property
    def failing(self) -> tuple[Series, ...]:
        return tuple(s for s in self.series if s.failing)

    @property
    def new(self) -> tuple[Series, ...]:
        return tuple(s for s in self.series if s.change == "new")

    @property
    def worse(self) -> tuple[Series, ...]:
        return tuple(s for s in self.series if s.change == "worse")

    @property
    def resolved(self) -> tuple[Series, ...]:
        return tuple(s for s in self.series if s.change == "resolved")

    @property
    def window(self) -> str:
        n = len(self.points)
        if n == 1:
            return f"1 recorded check run ({self.current.when})"
        return f"{n} recorded check runs from {self.points[0].when} to {self.current.when}"


def including(trend: Trend, report: Report) -> Trend:
    """Gives the trend up to the report's run, that run last (appended from the report when not recorded)."""
    ids = [run_id.lower() for run_id, _ in trend.runs]
    mine = report.run_id.lower()
    if mine in ids:
        n = ids.index(mine) + 1
        return Trend(trend.runs[:n], {fp: c[:n] for fp, c in trend.counts.items() if any(c[:n])}, trend.totals[:n])
    start = layout.as_utc(report.started_at)
    n = sum(1 for _, at in trend.runs if layout.as_utc(at) < start)  # the runs are oldest first
    now: dict[str, int] = {}
    for r in report.results:
        fp = fingerprint(r.code, r.table)
        now[fp] = now.get(fp, 0) + (r.count if r.failed else 0)
    prints = {fp for fp, c in trend.counts.items() if any(c[:n])} | {fp for fp, count in now.items() if count}
    counts = {fp: tuple(trend.counts.get(fp, (None,) * n)[:n]) + (now.get(fp),) for fp in sorted(prints)}
    return Trend(trend.runs[:n] + ((report.run_id, report.started_at),), counts,
                 trend.totals[:n] + (sum(r.failed for r in report.results),))


def build(trend: Trend, report: Report) -> TrendView | None:
    """Gives the view of the trend up to the report's run (None when there is nothing to show)."""
    trend = including(trend, report)
    if not trend.runs:
        return None
    facts = _facts(report, trend.counts)
    points = _points(trend, facts, report.run_id)
    series = [_series(fp, counts, facts[fp], points) for fp, counts in trend.counts.items()]
    last_seen = {s.fingerprint: max((i for i, c in enumerate(s.counts) if c), default=-1) for s in series}
    series.sort(key=lambda s: (not s.failing, s.severity.rank if s.failing else -last_seen[s.fingerprint],
                               s.change not in ("new", "worse"), -s.now, s.code, s.table))
    return TrendView(points, total_chart(points), tuple(series), points[-2] if len(points) > 1 else None)


# --- facts about each finding --------------------------------------------------------------------------


def _facts(report: Report, counts: dict[str, tuple[int | None, ...]]) -> dict[str, _Fact]:
    """Gives each fingerprint its rule's name, severity and unit: from the report, else from the catalogue."""
    from ..check.rule_registry import BY_CODE

    out = {fingerprint(r.code, r.table): _Fact(r.code, r.table, r.name, r.message, r.severity, r.unit)
           for r in report.results}
    for fp in counts:
        if fp not in out:
            code, _, table = fp.partition(":")
            rule = BY_CODE.get(code)
            out[fp] = _Fact(code, table, rule.name if rule else "", rule.message if rule else "",
                            rule.severity if rule else Severity.INFO, rule.unit if rule else "row")
    return out


def _points(trend: Trend, facts: dict[str, _Fact], current: str) -> tuple[RunPoint, ...]:
    points = []
    for i, (run_id, at) in enumerate(trend.runs):
        per: dict[Severity | None, int] = {}
        rows = 0
        for fp, counts in trend.counts.items():
            if counts[i]:
                per[facts[fp].severity] = per.get(facts[fp].severity, 0) + 1
                rows += counts[i] or 0
        known = sum(per.values())
        if trend.totals[i] > known:  # a failing result with a count of 0 is in the total but in no series
            per[None] = trend.totals[i] - known
        ordered = tuple((sev, per[sev]) for sev in (*Severity, None) if per.get(sev))
        points.append(RunPoint(run_id, at, trend.totals[i], rows, ordered, run_id.lower() == current.lower()))
    return tuple(points)


def _series(fp: str, counts: tuple[int | None, ...], fact: _Fact, points: tuple[RunPoint, ...]) -> Series:
    now = counts[-1] or 0
    previous = counts[-2] if len(counts) > 1 else None
    if len(counts) < 2:
        change = ""
    elif now and not previous:
        change = "new"
    elif now and previous is not None and now > previous:
        change = "worse"
    elif now and previous is not None and now < previous:
        change = "better"
    elif now:
        change = "same"
    else:
        change = "resolved" if previous else ""
    start = len(counts) - 1
    while start > 0 and counts[start - 1]:
        start -= 1
    if not now:
        since = "not failing"
    elif start == 0 and len(counts) > 1:
        since = f"all {len(counts)} runs"
    else:
        since = points[start].when
    return Series(fp, fact.code, fact.table, fact.name, fact.message, fact.severity, fact.unit, counts, now,
                  previous, change, since, sparkline(fact, counts, points))


__all__ = ["CHANGE_LABELS", "RunPoint", "Series", "TrendView", "build", "including", "nice_ticks"]
