"""The Prometheus text exposition (format 0.0.4), for a node_exporter textfile collector or a push."""

from __future__ import annotations

from collections import defaultdict

from ..findings import Report, Severity, Status
from . import layout

PREFIX = "mita_integrity"


def _label_value(value: str) -> str:
    """Gives the value escaped as the exposition format requires inside double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{_label_value(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _family(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} gauge"]
    return lines + [f"{PREFIX}_{name}{labels} {_number(value)}" for labels, value in samples]


def render_prometheus(report: Report) -> str:
    """Gives the metrics of the run: violations and status per rule and table, findings, timing."""
    # A rule may yield several results for one table (one per column); a scrape rejects a repeated
    # series, so results sharing a label set are summed (violations) or merged (status).
    violations: dict[tuple[str, str, str], float] = defaultdict(float)
    statuses: dict[tuple[str, str, str], int] = {}
    for result in report.results:
        key = (result.code, result.severity.value, result.table)
        # An errored rule's count is unknown, not zero: NaN keeps `> 0` alerts from reading it as clean.
        violations[key] += float("nan") if result.status is Status.ERROR else result.count
        statuses[(result.code, result.table, result.status.value)] = 1
    findings = {sev: 0 for sev in Severity}
    for result in report.results:
        if result.failed:
            findings[result.severity] += 1
    lines = _family(
        "violations",
        "Violating rows a rule found on a table (NaN when it errored; a pass counts 0, or a fail_above backlog).",
        [(_labels(code=c, severity=s, table=t), v) for (c, s, t), v in violations.items()],
    )
    lines += _family(
        "rule_status",
        "1 for the status (pass, fail, skipped, guaranteed, error) of a rule on a table in the last run.",
        [(_labels(code=c, table=t, status=s), v) for (c, t, s), v in statuses.items()],
    )
    lines += _family(
        "findings",
        "Failing results per severity in the last run.",
        [(_labels(severity=sev.value), n) for sev, n in findings.items()],
    )
    lines += _family("check_duration_seconds", "How long the last check run took.",
                     [("", report.duration_ms / 1000)])
    lines += _family("last_run_timestamp_seconds", "When the last check run finished (unix time).",
                     [("", layout.as_utc(report.finished_at).timestamp())])
    return "\n".join(lines) + "\n"
