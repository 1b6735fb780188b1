"""The Prometheus metrics of a check run, as metric families of the official client (`prometheus-client`).

The client's exposition writes them: the `prometheus` report format, the daemon's /metrics endpoint and the
node_exporter textfile all use the same families (schedule.MetricsExporter serves and writes them).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..findings import Report, Severity, Status
from . import layout

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from prometheus_client.metrics_core import Metric

PREFIX = "mita_integrity"


def report_metrics(report: Report) -> list[Metric]:
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
    by_rule = GaugeMetricFamily(
        f"{PREFIX}_violations",
        "Violating rows a rule found on a table (NaN when it errored; a pass counts 0, or a fail_above backlog).",
        labels=("code", "severity", "table"))
    for labels, value in violations.items():
        by_rule.add_metric(labels, value)
    status = GaugeMetricFamily(
        f"{PREFIX}_rule_status",
        "1 for the status (pass, fail, skipped, guaranteed, error) of a rule on a table in the last run.",
        labels=("code", "table", "status"))
    for labels, flag in statuses.items():
        status.add_metric(labels, flag)
    failing = GaugeMetricFamily(f"{PREFIX}_findings", "Failing results per severity in the last run.",
                                labels=("severity",))
    for sev, n in findings.items():
        failing.add_metric((sev.value,), n)
    return [by_rule, status, failing,
            GaugeMetricFamily(f"{PREFIX}_check_duration_seconds", "How long the last check run took.",
                              value=report.duration_ms / 1000),
            GaugeMetricFamily(f"{PREFIX}_last_run_timestamp_seconds", "When the last check run finished (unix time).",
                              value=layout.as_utc(report.finished_at).timestamp())]


class Families(Collector):
    """A collector that gives fixed metric families (a finished run's metrics do not change)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render_prometheus(report: Report) -> str:
    """Gives the run's metrics in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(report_metrics(report)))
    return generate_latest(registry).decode()
