"""The text report: what the on-call engineer reads in a terminal, plain or in ANSI colours."""

from __future__ import annotations

import io
import json
import textwrap
from collections import Counter

from rich.console import Console
from rich.text import Text

from ..findings import SECTIONS, Report, Result, Severity, Status, TableStats
from . import layout
from .layout import SectionResults

WIDTH = 120
INDENT = "    "
TAG_WIDTH = 11  # "GUARANTEED" and a space
CODE_WIDTH = 7

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "bold yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "blue",
}
STATUS_STYLE = {
    Status.PASS: "green",
    Status.GUARANTEED: "green",
    Status.SKIPPED: "dim",
    Status.ERROR: "bold magenta",
}


def render_text(report: Report, *, color: bool = False) -> str:
    """Gives the whole text report; with `color` the lines carry ANSI escape codes (via rich)."""
    lines = _header(report) + _overview(report) + _row_counts(report.tables)
    for section in layout.by_section(report):
        lines += _section(section, report)
    lines += _footer(report)
    if not color:
        return "\n".join(line.plain.rstrip() for line in lines) + "\n"
    buffer = io.StringIO()
    # An explicit colour system: "auto" would turn colours off under TERM=dumb even when forced.
    console = Console(file=buffer, force_terminal=True, width=WIDTH, color_system="standard",
                      highlight=False, soft_wrap=True, emoji=False)
    for line in lines:
        console.print(line)
    return buffer.getvalue()


def _fit(text: str, width: int) -> str:
    """Gives the text cut to `width` characters, with an ellipsis when something was cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _heading(number: int, title: str) -> list[Text]:
    return [Text(""), Text.assemble((f"{number:>2}  ", "bold"), (title, "bold underline"))]


def _field(label: str, value: str, style: str = "") -> Text:
    return Text.assemble((f"{INDENT}{label:<11}", "dim"), (_fit(value, WIDTH - len(INDENT) - 11), style))


def _header(report: Report) -> list[Text]:
    db = report.database
    version = report.tool_version or "(unknown version)"
    return [
        Text.assemble(("mita-integrity ", "bold"), (version, "bold"), (" · integrity check", "")),
        _field("database", db.url),
        _field("server", f"{db.server_version} · database {db.name} · user {db.user}"),
        _field("alembic", db.alembic_revision or "none (no alembic_version table)"),
        _field("run", report.run_id),
        _field("started", f"{layout.utc_text(report.started_at)} · took {layout.duration_text(report.duration_ms)}"),
        *([_field("mode", mode_text(report))] if "mode" in report.options else []),
    ]


def mode_text(report: Report) -> str:
    """Gives how a check --incremental ran: from which base, how many results were read in full and why."""
    if report.mode != "incremental":
        why = next((r.evaluated_reason for r in report.results if r.evaluated_reason), None)
        return "full (incremental asked" + (f": {why})" if why else ")")
    full = sum(r.evaluated == "full" and r.evaluated_reason is not None for r in report.results)
    return f"incremental from run {report.base_run} · {full} results read in full (see the JSON's evaluated_reason)"


def _severity_counts(report: Report) -> Text:
    text = Text()
    for i, (severity, n) in enumerate(layout.severity_counts(report)):
        if i:
            text.append(" · ", "dim")
        text.append(f"{n} {severity.value}", SEVERITY_STYLE[severity] if n else "dim")
    return text


def _rules_line(report: Report) -> str:
    summary = report.summary()
    errors = sum(r.status is Status.ERROR for r in report.results)
    run = f"{summary['rules_run']} run" + (f" ({errors} with an error)" if errors else "")
    return f"{run} · {summary['rules_skipped']} skipped · {summary['rules_guaranteed']} guaranteed by a constraint"


def _overview(report: Report) -> list[Text]:
    failing = Text.assemble((f"{INDENT}{'failing':<11}", "dim"), _severity_counts(report))
    return _heading(1, SECTIONS[1]) + [failing, _field("rules", _rules_line(report))]


def _row_counts(tables: tuple[TableStats, ...]) -> list[Text]:
    lines = _heading(2, SECTIONS[2])
    if not tables:
        return lines + [Text(f"{INDENT}no table statistics were collected", "dim")]
    name_width = min(max(len(t.name) for t in tables), 40)
    header = f"{INDENT}{'table':<{name_width}}  {'live rows':>12}  {'dead rows':>11}  {'dead':>5}  last vacuum"
    lines.append(Text(header, "dim"))
    for t in tables:
        total = t.live_rows + t.dead_rows
        dead_share = f"{100 * t.dead_rows / total:.0f}%" if total else "-"
        vacuums = [(v, kind) for v, kind in ((t.last_vacuum, ""), (t.last_autovacuum, " (auto)")) if v]
        latest = max(vacuums, key=lambda pair: layout.as_utc(pair[0])) if vacuums else None
        vacuum = f"{layout.utc_text(latest[0])}{latest[1]}" if latest else "never"
        row = (f"{INDENT}{_fit(t.name, name_width):<{name_width}}  {t.live_rows:>12,}  {t.dead_rows:>11,}"
               f"  {dead_share:>5}  {vacuum}")
        lines.append(Text(row, "yellow" if total and t.dead_rows / total > 0.2 else ""))
    return lines


def _tag(result: Result) -> tuple[str, str]:
    if result.status is Status.FAIL:
        return result.severity.value.upper(), SEVERITY_STYLE[result.severity]
    return result.status.value.upper(), STATUS_STYLE[result.status]


def _failing_lines(result: Result, target_width: int) -> list[Text]:
    """Gives the result's line, the rest of a long message, its sample and its hint."""
    label, style = _tag(result)
    head = Text.assemble(
        INDENT, (f"{label:<{TAG_WIDTH - 1}}", style), " ", (f"{result.code:<{CODE_WIDTH}}", "bold"), " ",
        (f"{layout.target(result):<{target_width}}", "cyan"), "  ", (layout.count_label(result), "bold"),
    )
    pad = INDENT + " " * TAG_WIDTH
    lines = [head]
    if result.message:
        head.append(" — ", "dim")
        # Cut at a word and carry the rest to the next line: the first line stays greppable, nothing is lost.
        first, *rest = textwrap.wrap(result.message, max(WIDTH - len(head.plain), 20)) or [""]
        head.append(first)
        rest = textwrap.wrap(" ".join(rest), WIDTH - len(pad) - 6)
        lines += [Text(pad + "      " + more) for more in rest]
    if result.sample:
        lines.append(Text.assemble(pad, ("sample", "dim"), " ", _sample_text(result, WIDTH - len(pad) - 7)))
    hint = textwrap.wrap(layout.hint(result), WIDTH - len(pad) - 6) or [""]
    lines.append(Text.assemble(pad, ("hint  ", "dim"), hint[0]))
    lines += [Text(pad + "      " + more) for more in hint[1:]]
    return lines


def _key_text(key: str) -> str:
    """Gives the key as typed in a query: quoted when it is empty or has spaces or commas around it."""
    return json.dumps(key, ensure_ascii=False) if not key.strip() or key != key.strip() or "," in key else key


def _sample_text(result: Result, width: int) -> Text:
    """Gives as many sample keys as fit on one line, and how many more the JSON report holds."""
    keys = [_key_text(key) for key in result.sample]
    shown: list[str] = []
    for i, key in enumerate(keys):
        rest = len(keys) - i - 1
        tail = f" (+{rest} more)" if rest else ""
        if shown and len(", ".join([*shown, key]) + tail) > width:
            break
        shown.append(key)
    text = Text(", ".join(shown))
    if len(keys) > len(shown):
        text.append(f" (+{len(keys) - len(shown)} more)", "dim")
    return text


def _reason_line(result: Result, target_width: int) -> list[Text]:
    """Gives the line of a guaranteed, skipped or errored result with its reason (wrapped, not cut)."""
    label, style = _tag(result)
    prefix = Text.assemble(
        INDENT, (f"{label:<{TAG_WIDTH - 1}}", style), " ", (f"{result.code:<{CODE_WIDTH}}", "bold"), " ",
        (f"{layout.target(result):<{target_width}}", "cyan"), "  ",
    )
    reason = result.reason or "(no reason given)"
    body = textwrap.wrap(reason, max(WIDTH - len(prefix.plain), 40)) or [""]
    lines = [Text.assemble(prefix, body[0])]
    lines += [Text(" " * len(prefix.plain) + more) for more in body[1:]]
    return lines


def _passing_line(passing: tuple[Result, ...]) -> list[Text]:
    per_code = Counter(r.code for r in passing)
    codes = [code if n == 1 else f"{code}×{n}" for code, n in sorted(per_code.items())]
    noun = "rule passes" if len(passing) == 1 else "rules pass"
    prefix = f"{INDENT}{'PASS':<{TAG_WIDTH}}"
    body = textwrap.wrap(f"{len(passing)} {noun}: {' '.join(codes)}", WIDTH - len(prefix))
    lines = [Text.assemble((prefix, STATUS_STYLE[Status.PASS]), body[0])]
    lines += [Text(" " * len(prefix) + more) for more in body[1:]]
    return lines


def _section(section: SectionResults, report: Report) -> list[Text]:
    lines = _heading(section.number, section.title)
    window = layout.since_window(report)
    if section.number == layout.RECENT_DATA_SECTION:
        if window:
            lines.append(_field("window", f"rows created in the last {window}"))
        elif section.empty:
            return lines + [Text(f"{INDENT}not requested (use --since 7d)", "dim")]
    if section.empty:
        return lines + [Text(f"{INDENT}no results in this section", "dim")]
    target_width = min(max(len(layout.target(r)) for r in section.results), 32)
    for result in section.failing:
        lines += _failing_lines(result, target_width)
    for result in section.errors:
        lines += _reason_line(result, target_width)
    # A pass that still counts rows is a backlog the project file accepts (fail_above): its count is shown.
    accepted = tuple(r for r in section.passing if r.count)
    if len(section.passing) > len(accepted):
        lines += _passing_line(tuple(r for r in section.passing if not r.count))
    for result in accepted:
        lines += _reason_line(result, target_width)
    for result in section.guaranteed + section.skipped:
        lines += _reason_line(result, target_width)
    return lines


def _footer(report: Report) -> list[Text]:
    worst = report.worst()
    verdict_style = SEVERITY_STYLE[worst] if worst else "bold green"
    return [
        Text(""),
        Text("─" * 60, "dim"),
        Text.assemble((f"{'summary':<11}", "bold"), _severity_counts(report), " failing"),
        Text.assemble(" " * 11, f"rules {_rules_line(report)}"),
        Text.assemble((f"{'verdict':<11}", "bold"), (layout.verdict(report), verdict_style)),
    ]
