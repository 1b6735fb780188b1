"""What every format shows the same way: results grouped by section and ordered, labels, times, hints."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..findings import SECTIONS, Report, Result, Severity, Status

# Sections 1 (overview) and 2 (row counts) are headers built from the summary and the table stats;
# rules report into 3..14.
RULE_SECTIONS: tuple[int, ...] = tuple(n for n in SECTIONS if n > 2)
RECENT_DATA_SECTION = 13

# Within a section: what needs a person first, then what could not be known, then what is fine.
STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.PASS: 2, Status.GUARANTEED: 3, Status.SKIPPED: 4}


@dataclass(frozen=True)
class SectionResults:
    """One section's results, split the way the reports show them."""

    number: int
    title: str
    failing: tuple[Result, ...]  # worst severity first, then most rows
    errors: tuple[Result, ...]
    passing: tuple[Result, ...]
    guaranteed: tuple[Result, ...]
    skipped: tuple[Result, ...]

    @property
    def results(self) -> tuple[Result, ...]:
        return self.failing + self.errors + self.passing + self.guaranteed + self.skipped

    @property
    def empty(self) -> bool:
        return not self.results


def ordered(results: Iterable[Result]) -> list[Result]:
    """Gives the results failing first (worst severity, then most rows), then errors, passes, the rest."""
    return sorted(results, key=lambda r: (STATUS_ORDER[r.status], r.severity.rank, -r.count, r.code, r.table))


def by_section(report: Report) -> list[SectionResults]:
    """Gives one `SectionResults` per rule section (3..14, and any other section holding results)."""
    numbers = sorted(set(RULE_SECTIONS) | {r.section for r in report.results})
    out = []
    for number in numbers:
        mine: dict[Status, list[Result]] = {status: [] for status in Status}
        for result in ordered(r for r in report.results if r.section == number):
            mine[result.status].append(result)
        out.append(
            SectionResults(
                number=number,
                title=SECTIONS.get(number, f"Section {number}"),
                failing=tuple(mine[Status.FAIL]),
                errors=tuple(mine[Status.ERROR]),
                passing=tuple(mine[Status.PASS]),
                guaranteed=tuple(mine[Status.GUARANTEED]),
                skipped=tuple(mine[Status.SKIPPED]),
            )
        )
    return out


def target(result: Result) -> str:
    """Gives `table.column`, or the table alone when the rule is about no single column."""
    return f"{result.table}.{result.column}" if result.column else result.table


def hint(result: Result) -> str:
    """Gives the result's one-line hint, or where to read about the rule when it has none."""
    if result.hint.strip():
        return " ".join(result.hint.split())
    return f"run `mita-integrity rules {result.code}` for what it means and how to repair it"


def count_label(result: Result) -> str:
    """Gives the count as read aloud: `42 rows`, or `12 surplus rows in 5 groups` for duplicates."""
    plural = f"{result.unit}es" if result.unit.endswith(("x", "s")) else f"{result.unit}s"
    rows = result.unit if result.count == 1 else plural
    if result.groups is not None:
        groups = "group" if result.groups == 1 else "groups"
        return f"{result.count:,} surplus {rows} in {result.groups:,} {groups}"
    return f"{result.count:,} {rows}"


def as_utc(moment: datetime) -> datetime:
    """Gives the moment in UTC; a naive datetime is taken to be UTC already (sessions pin UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_text(moment: datetime | None) -> str:
    """Gives `2026-11-25 02:15:00 UTC`, or `never` for None."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def duration_text(ms: int) -> str:
    """Gives a duration for people: `850 ms`, `12.3 s`, `4 min 05 s`."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds:02d} s"


def since_window(report: Report) -> str | None:
    """Gives the `--since` window of the run as typed (`7d`), or None when none was asked for."""
    since = report.options.get("since")
    if not since:
        return None
    if isinstance(since, timedelta):  # the CLI may hand over the parsed window rather than the text
        days, seconds = since.days, since.seconds
        return f"{days}d" if not seconds else f"{days * 24 + seconds // 3600}h"
    return str(since)


def verdict(report: Report) -> str:
    """Gives the one-line verdict: the worst failing severity, or that nothing fails."""
    worst = report.worst()
    errors = sum(r.status is Status.ERROR for r in report.results)
    could_not = f"; {errors} rule{'s' if errors != 1 else ''} could not run" if errors else ""
    if worst is None:
        return f"no failing rules{could_not}"
    return f"worst finding: {worst.value}{could_not}"


def severity_counts(report: Report) -> list[tuple[Severity, int]]:
    """Gives the number of failing results of each severity, worst first."""
    summary = report.summary()
    return [(sev, summary[sev.value]) for sev in Severity]
