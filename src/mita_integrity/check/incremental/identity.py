"""What makes a recorded base this check's: the catalogue's fingerprint and the options that decide results.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ... import __version__


def catalogue_fingerprint() -> str:
    """Gives a digest of the tool's version and the rule modules' source: another catalogue, another digest."""
    digest = hashlib.sha256(__version__.encode())
    # every module of rules/, iso4217.py (AMT001's list of currencies) included
    for path in sorted((Path(__file__).parents[1] / "rules").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def option_key(options: dict[str, Any]) -> dict[str, Any]:
    """Gives the options that decide the results (not the output's): a base must have been run with these."""
    # sample too: a kept result shows the base's sample rows, as many as the base's --sample asked for
    keys = ("since", "budget_days", "day_boundary", "select", "ignore", "no_guarantees", "physical",
            "exclude_tables", "sample")
    return {k: options.get(k) for k in keys}
