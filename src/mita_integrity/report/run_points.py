"""The points the trend charts draw: one recorded run on the time axis, one finding's facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..findings import Severity
from . import layout


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
class _Fact:
    code: str
    table: str
    name: str
    message: str
    severity: Severity
    unit: str
