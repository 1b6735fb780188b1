"""The JSON report (DESIGN's `schema_version: 1`): what machines and later runs read."""

from __future__ import annotations

import json

from ..findings import Report


def render_json(report: Report) -> str:
    """Gives the report as indented JSON in DESIGN's field order, ending with a newline."""
    # ensure_ascii=False keeps names such as "Café" readable; the file is written as UTF-8.
    return json.dumps(report.to_json(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
