"""`verify`: the seed's success metrics as a scorecard; exit 0 only when every line passes."""

from __future__ import annotations

import json
import sys

import click
from rich.text import Text

from ..verify.scorecard import Scorecard
from .app import App, console


@click.command("verify")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-age", default="26h", show_default=True, metavar="AGE",
              help="The last recorded check run must be younger than this (30m, 26h, 2d…).")
@click.pass_obj
def verify_command(app: App, fmt: str, max_age: str) -> int:
    """Score the success metrics: orphans, foreign keys, cascade, unique key, CHECKs, trigger, recent check.

    Probes write inside transactions that are always rolled back: nothing is left behind.
    """
    from ..verify.scorecard import parse_max_age, run_verify

    seconds = parse_max_age(max_age)
    card = run_verify(app.database(), seconds)
    if fmt == "json":
        sys.stdout.write(json.dumps(card.to_json(), indent=2) + "\n")
        return 0 if card.passed else 1
    render_scorecard(card)
    return 0 if card.passed else 1


def render_scorecard(card: Scorecard) -> None:
    """Prints a line per metric (PASS/FAIL and the evidence), then the verdict."""
    width = max(len(line.name) for line in card.lines)
    for line in card.lines:
        text = Text()
        text.append("PASS" if line.passed else "FAIL", style="green" if line.passed else "bold red")
        text.append(f"  {line.name:<{width}}  {line.evidence}")
        console.print(text)
    failed = [line.name for line in card.lines if not line.passed]
    console.print(f"verify: all {len(card.lines)} metrics pass" if not failed else
                  f"verify: {len(failed)} of {len(card.lines)} metrics fail ({', '.join(failed)})", markup=False)
