"""The trend charts of the HTML report, drawn as inline SVG (no charting library, nothing fetched, no script).

The colours are the page's CSS variables, so the charts follow its light and dark schemes; every bar and
point carries a `<title>` that the browser shows as a tooltip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from ..wording import counted
from . import layout

if TYPE_CHECKING:
    from .run_points import RunPoint, _Fact

# The total chart's drawing box (viewBox units; the page scales it to the panel's width).
CHART_W, CHART_H = 1000, 320
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 64, 20, 30, 84
# A sparkline's box (drawn at this size in CSS pixels).
SPARK_W, SPARK_H, SPARK_PAD = 180, 44, 6


def rows_text(count: int, unit: str) -> str:
    return counted(count, unit)


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
        said = "not evaluated" if c is None else rows_text(c, fact.unit)
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
