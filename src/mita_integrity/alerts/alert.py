"""What one alert channel is told about one run: the routed changes, ready to render."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..database.urls import mask_secrets
from ..findings import Severity
from ..runs.findings_history import Finding
from ..wording import counted


@dataclass(frozen=True)
class Alert:
    """What one channel is told about one run: the routed changes, ready to render."""

    run_id: str
    database: str  # masked URL or name
    name: str  # the database's short name, for titles
    started_at: datetime
    new: tuple[Finding, ...] = ()
    worsened: tuple[Finding, ...] = ()
    resolved: tuple[Finding, ...] = ()
    failing: tuple[tuple[Severity, int], ...] = ()  # failing findings of the run per severity
    report_url: str | None = None
    units: tuple[tuple[str, str], ...] = ()  # fingerprint -> what its count counts
    secrets: tuple[str, ...] = field(default=(), repr=False)
    failure: str | None = None  # the check could not run: why (one line, no secrets)

    @property
    def empty(self) -> bool:
        return not (self.new or self.worsened or self.resolved) and self.failure is None

    @property
    def title(self) -> str:
        """Gives e.g. `2 new critical findings, 1 high finding worsened on mita_demo`."""
        if self.failure is not None:
            return f"the check of {self.name} could not run"
        parts = []
        for findings, new, after in ((self.new, "new ", ""), (self.worsened, "", " worsened"),
                                     (self.resolved, "", " resolved")):
            by_severity = Counter(f.severity for f in findings)
            for severity in sorted(by_severity, key=lambda s: s.rank):
                parts.append(f"{counted(by_severity[severity], f'{new}{severity.value} finding')}{after}")
        return f"{', '.join(parts) or 'no changes'} on {self.name}"

    @property
    def sections(self) -> tuple[tuple[str, tuple[Finding, ...]], ...]:
        """Gives the non-empty lists, headed: New, Worse than the last run, Resolved."""
        return tuple((head, items) for head, items in (("New", self.new), ("Worse than the last run", self.worsened),
                                                        ("Resolved", self.resolved)) if items)

    def amount(self, finding: Finding) -> str:
        """Gives `12 rows`, `12 rows (was 5)`, or `resolved (was 4 rows)`."""
        unit = dict(self.units).get(finding.fingerprint, "row")
        if finding in self.resolved:
            return f"resolved (was {counted(finding.previous or 0, unit)})"
        was = f" (was {finding.previous:,})" if finding.previous is not None else ""
        return f"{counted(finding.count, unit)}{was}"

    def counts(self) -> str:
        """Gives `critical 2 · high 1 · medium 0 · low 0 · info 1` (the run's failing findings)."""
        failing = dict(self.failing)
        return " · ".join(f"{s.value} {failing.get(s, 0)}" for s in Severity)

    def clean(self, value: Any) -> Any:
        """Gives value (strings, lists, dicts) with URL passwords and the configured secrets masked."""
        if isinstance(value, str):
            return mask_secrets(value, *self.secrets)
        if isinstance(value, dict):
            return {k: self.clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean(v) for v in value]
        return value
