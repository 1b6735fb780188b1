"""The trends of recorded checks in the HTML report: a total chart, a sparkline per finding, what is new.

Drawn here as inline SVG (no charting library, nothing fetched, no script): the colours are the page's CSS
variables, so the charts follow its light and dark schemes, and every bar and point carries a `<title>`
that the browser shows as a tooltip. The input is a `history.Trend` (the failing counts of recorded check
runs, oldest first); the report being rendered is its last run — appended when it was not recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from ..findings import Report, Severity
from ..history import Trend, fingerprint
from . import layout

# The total chart's drawing box (viewBox units; the page scales it to the panel's width).
CHART_W, CHART_H = 1000, 320
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 64, 20, 30, 84
# A sparkline's box (drawn at this size in CSS pixels).
SPARK_W, SPARK_H, SPARK_PAD = 180, 44, 6

CHANGE_LABELS = {"new": "new", "worse": "worse", "better": "better", "same": "unchanged", "resolved": "resolved",
                 "": "—"}


@dataclass(frozen=True)
class RunPoint:
    """One recorded check run on the time axis."""

    id: str
    started_at: datetime
    total: int  # failing results
    rows: int  # violating rows (the sum of the failing counts)
    by_severity: tuple[tuple[Severity | None, int], ...]  # failing results per severity; None: not known
    current: bool

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def when(self) -> str:
        return layout.utc_text(self.started_at)


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
        return _rows(self.now, self.unit)


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


@dataclass(frozen=True)
class _Fact:
    code: str
    table: str
    name: str
    message: str
    severity: Severity
    unit: str


def _facts(report: Report, counts: dict[str, tuple[int | None, ...]]) -> dict[str, _Fact]:
    """Gives each fingerprint its rule's name, severity and unit: from the report, else from the catalogue."""
    from ..rules.catalogue import BY_CODE

    out = {fingerprint(r.code, r.table): _Fact(r.code, r.table, r.name, r.message, r.severity, r.unit)
           for r in report.results}
    for fp in counts:
        if fp not in out:
            code, _, table = fp.partition(":")
            rule = BY_CODE.get(code)
            out[fp] = _Fact(code, table, rule.name if rule else "", rule.message if rule else "",
                            rule.severity if rule else Severity.INFO, rule.unit if rule else "row")
    return out


def _rows(count: int, unit: str) -> str:
    plural = f"{unit}es" if unit.endswith(("x", "s")) else f"{unit}s"
    return f"{count:,} {unit if count == 1 else plural}"


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


# --- drawing -------------------------------------------------------------------------------------------


def _num(value: float) -> str:
    """Gives a coordinate with at most one decimal (short, and the same page every time)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_ticks(top: int) -> list[int]:
    """Gives 0 and up to five evenly spaced round values covering `top` (steps of 1, 2 or 5 × 10^k)."""
    top = max(top, 1)
    step = 1
    for magnitude in (10**k for k in range(12)):
        found = next((m * magnitude for m in (1, 2, 5) if top / (m * magnitude) <= 5), None)
        if found is not None:
            step = found
            break
    return list(range(0, math.ceil(top / step) * step + 1, step))


def _time_labels(points: tuple[RunPoint, ...]) -> list[tuple[str, str]]:
    """Gives each run its time line (with seconds when two runs share a minute) and its date line."""
    moments = [layout.as_utc(p.started_at) for p in points]
    minutes = [m.strftime("%Y-%m-%d %H:%M") for m in moments]
    fmt = "%H:%M:%S" if len(set(minutes)) < len(minutes) else "%H:%M"
    return [(m.strftime(fmt), m.strftime("%b %d").replace(" 0", " ")) for m in moments]


def _shown(n: int, most: int) -> set[int]:
    """Gives which of n labels to show so that at most `most` appear, the last one always."""
    every = max(1, math.ceil(n / most))
    return set(range(n - 1, -1, -every))


def _breakdown(point: RunPoint) -> str:
    parts = [f"{n:,} {sev.value if sev else 'other'}" for sev, n in point.by_severity]
    return f" ({', '.join(parts)})" if parts else ""


def total_chart(points: tuple[RunPoint, ...]) -> Markup:
    """Gives the stacked bar chart of the failing results per run, by severity, as one <svg>."""
    n = len(points)
    plot_w = CHART_W - CHART_LEFT - CHART_RIGHT
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM
    base = CHART_TOP + plot_h
    ticks = nice_ticks(max(p.total for p in points))
    top = ticks[-1]
    slot = plot_w / n
    bar = min(56.0, slot * 0.62)

    def y(value: float) -> float:
        return base - value / top * plot_h

    totals = ", ".join(f"{p.total:,}" for p in points)
    out = [f'<svg class="chart total-chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
           f'preserveAspectRatio="xMidYMid meet" data-totals="{",".join(str(p.total) for p in points)}" '
           f'aria-label="{escape(f"Failing results per recorded check run, oldest first: {totals}")}">',
           f"<title>Failing results per recorded check run ({n} run{'s' if n != 1 else ''})</title>"]
    for tick in ticks:  # gridlines and the y axis
        ty = _num(y(tick))
        out.append(f'<line class="grid{" axis" if tick == 0 else ""}" x1="{CHART_LEFT}" x2="{CHART_W - CHART_RIGHT}" '
                   f'y1="{ty}" y2="{ty}"/>')
        out.append(f'<text class="tick" x="{CHART_LEFT - 10}" y="{ty}" text-anchor="end" '
                   f'dominant-baseline="middle">{tick:,}</text>')
    mid = _num(CHART_TOP + plot_h / 2)
    out.append(f'<text class="axis-title" x="18" y="{mid}" text-anchor="middle" '
               f'transform="rotate(-90 18 {mid})">failing results</text>')
    labels = _time_labels(points)
    shown = _shown(n, max(1, int(plot_w // 84)))
    last_day = ""
    for i, p in enumerate(points):
        x0 = CHART_LEFT + slot * i
        cx = x0 + slot / 2
        tip = (f"{p.when} · run {p.short_id}{' (this run)' if p.current else ''}\n"
               f"{p.total:,} failing result{'s' if p.total != 1 else ''}{_breakdown(p)}; "
               f"{p.rows:,} violating rows")
        out.append(f'<g class="run{" current" if p.current else ""}" data-run="{escape(p.id)}">'
                   f"<title>{escape(tip)}</title>")
        out.append(f'<rect class="hit{" current-slot" if p.current else ""}" x="{_num(x0 + 1)}" y="{CHART_TOP}" '
                   f'width="{_num(slot - 2)}" height="{plot_h}" rx="6"/>')
        level = 0
        for sev, count in p.by_severity:  # worst at the bottom
            y_top, y_bottom = y(level + count), y(level)
            out.append(f'<rect class="seg {sev.value if sev else "other"}" x="{_num(cx - bar / 2)}" '
                       f'y="{_num(y_top)}" width="{_num(bar)}" height="{_num(max(y_bottom - y_top, 0.5))}"/>')
            level += count
        out.append(f'<text class="value" x="{_num(cx)}" y="{_num(y(p.total) - 8)}" '
                   f'text-anchor="middle">{p.total:,}</text>')
        if i in shown:  # the time, the run's short id, and the date where it changes
            time_text, day = labels[i]
            out.append(f'<text class="xlabel{" strong" if p.current else ""}" x="{_num(cx)}" y="{base + 20}" '
                       f'text-anchor="middle">{escape(time_text)}</text>')
            out.append(f'<text class="xlabel run-id" x="{_num(cx)}" y="{base + 37}" '
                       f'text-anchor="middle">{escape(p.short_id)}</text>')
            if day != last_day:
                out.append(f'<text class="xlabel day" x="{_num(cx)}" y="{base + 54}" '
                           f'text-anchor="middle">{escape(day)}</text>')
                last_day = day
        out.append("</g>")
    out.append(f'<text class="axis-title" x="{_num(CHART_LEFT + plot_w / 2)}" y="{CHART_H - 6}" '
               f'text-anchor="middle">recorded check runs, oldest first (UTC)</text>')
    out.append("</svg>")
    return Markup("".join(out))


def sparkline(fact: _Fact, counts: tuple[int | None, ...], points: tuple[RunPoint, ...]) -> Markup:
    """Gives one finding's count over the runs as a small <svg>: a line, a dot per run, a tooltip per run."""
    n = len(counts)
    peak = max((c for c in counts if c is not None), default=0) or 1
    inner_w, inner_h = SPARK_W - 2 * SPARK_PAD, SPARK_H - 2 * SPARK_PAD
    base = SPARK_PAD + inner_h

    def x(i: int) -> float:
        return SPARK_PAD + (inner_w * i / (n - 1) if n > 1 else inner_w / 2)

    def y(value: int) -> float:
        return base - value / peak * inner_h

    values = ", ".join("–" if c is None else f"{c:,}" for c in counts)
    data = ",".join("" if c is None else str(c) for c in counts)
    label = f"{fact.code} on {fact.table}, {fact.unit}s per run, oldest first: {values}"
    out = [f'<svg class="spark {fact.severity.value}" viewBox="0 0 {SPARK_W} {SPARK_H}" width="{SPARK_W}" '
           f'height="{SPARK_H}" role="img" data-counts="{data}" aria-label="{escape(label)}">',
           f"<title>{escape(label)}</title>",
           f'<line class="base" x1="{SPARK_PAD}" x2="{SPARK_W - SPARK_PAD}" y1="{base}" y2="{base}"/>']
    runs: list[list[int]] = []  # stretches of evaluated runs: the line breaks where a rule was not run
    for i, c in enumerate(counts):
        if c is None:
            runs.append([])
        elif runs and runs[-1]:
            runs[-1].append(i)
        else:
            runs.append([i])
    for stretch in (s for s in runs if len(s) > 1):
        line = " ".join(f"{_num(x(i))},{_num(y(counts[i] or 0))}" for i in stretch)
        area = f"{_num(x(stretch[0]))},{base} {line} {_num(x(stretch[-1]))},{base}"
        out.append(f'<polygon class="area" points="{area}"/><polyline class="line" points="{line}"/>')
    slot = inner_w / max(n - 1, 1)
    for i, c in enumerate(counts):
        p = points[i]
        said = "not evaluated" if c is None else _rows(c, fact.unit)
        tip = f"{p.when} · run {p.short_id}{' (this run)' if p.current else ''}: {said}"
        hx = max(0.0, x(i) - slot / 2) if n > 1 else 0.0
        hw = min(slot, SPARK_W - hx) if n > 1 else SPARK_W
        out.append(f'<g><title>{escape(tip)}</title><rect class="hit" x="{_num(hx)}" y="0" width="{_num(hw)}" '
                   f'height="{SPARK_H}"/>')
        if c is not None:
            kind = "dot last" if i == n - 1 else "dot"
            out.append(f'<circle class="{kind}{" zero" if c == 0 else ""}" cx="{_num(x(i))}" cy="{_num(y(c))}" '
                       f'r="{3.6 if i == n - 1 else 2.4}"/>')
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))
