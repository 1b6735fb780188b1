"""The JUnit XML report: one test suite per section, one test case per result, for CI dashboards."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..findings import Report, Result, Status
from . import layout

# XML 1.0 forbids most control characters even escaped; a PostgreSQL error text may carry one.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _slug(title: str) -> str:
    """Gives `orphaned_records` for "Orphaned records" (a class name CI tools can group by)."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def _details(result: Result) -> str:
    """Gives the body of a failure: what, how many, which keys, what to do."""
    lines = [f"{result.code} {result.name}: {layout.target(result)}", f"count: {layout.count_label(result)}"]
    if result.sample:
        lines.append(f"sample: {', '.join(result.sample)}")
    fix = f"available ({result.fix_safety.value})" if result.fix_available else "none"
    lines += [f"repair: {fix}", f"hint: {layout.hint(result)}"]
    return _clean("\n".join(lines))


def _testcase(parent: ET.Element, classname: str, result: Result) -> None:
    case = ET.SubElement(parent, "testcase", classname=classname, name=f"{result.code} {result.table}",
                         time=_seconds(result.duration_ms))
    if result.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=_clean(result.message or result.name),
                                type=result.severity.value)
        failure.text = _details(result)
    elif result.status is Status.ERROR:
        error = ET.SubElement(case, "error", message=_clean(result.reason or "the rule's query failed"),
                              type="error")
        error.text = _clean(f"{result.code} {result.name}: {layout.target(result)}\n{result.reason or ''}")
    elif result.status is Status.GUARANTEED:
        ET.SubElement(case, "skipped", message=_clean(f"guaranteed: {result.reason or 'by a constraint'}"))
    elif result.status is Status.SKIPPED:
        ET.SubElement(case, "skipped", message=_clean(result.reason or "skipped"))
    elif result.count:  # a pass with rows: a backlog the project file accepts (fail_above)
        ET.SubElement(case, "system-out").text = _clean(f"count: {layout.count_label(result)}; {result.reason or ''}")


def render_junit(report: Report) -> str:
    """Gives the JUnit XML document; only sections holding results become test suites."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.Element("testsuites", name="mita-integrity", time=_seconds(report.duration_ms))
    started = layout.as_utc(report.started_at).strftime("%Y-%m-%dT%H:%M:%S")
    for section in layout.by_section(report):
        if section.empty:
            continue
        counts = {
            "tests": len(section.results),
            "failures": len(section.failing),
            "errors": len(section.errors),
            "skipped": len(section.guaranteed) + len(section.skipped),
        }
        attributes = {"name": section.title, "timestamp": started,
                      "time": _seconds(sum(r.duration_ms for r in section.results))}
        suite = ET.SubElement(root, "testsuite", attributes | {key: str(n) for key, n in counts.items()})
        classname = f"mita_integrity.{_slug(section.title)}"
        for result in section.results:
            _testcase(suite, classname, result)
        for key, value in counts.items():
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
