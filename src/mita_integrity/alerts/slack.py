"""Slack: one Block Kit message per run to an incoming webhook.

The message: a header with the title (`2 new critical findings on mita_demo`), the database (masked) and
the run, the run's failing findings counted by severity, then the new, worsened and resolved findings —
code, table, count (and the previous count), severity, the rule's message — and a button to the HTML
report when `report_url` is configured. Slack's limits are kept: 150 characters in a header, 3000 in a
section, at most `MAX_ITEMS` findings listed per section (the rest are counted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..findings import Severity
from ..report.layout import utc_text
from ..runs.findings_history import Finding
from .webhook import RETRY_DELAYS, Budget, Sleep, post_json

if TYPE_CHECKING:
    from .alert import Alert

MAX_ITEMS = 20
SECTION_LIMIT = 3000

ICONS = {Severity.CRITICAL: ":red_circle:", Severity.HIGH: ":large_orange_circle:",
         Severity.MEDIUM: ":large_yellow_circle:", Severity.LOW: ":large_blue_circle:", Severity.INFO: ":white_circle:"}


def escape(text: str) -> str:
    """Gives text safe for Slack's mrkdwn (`&`, `<` and `>` are control characters there)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"`{escape(text).replace('`', chr(39))}`"


def _line(alert: Alert, finding: Finding, resolved: bool) -> str:
    icon = ":white_check_mark:" if resolved else ICONS[finding.severity]
    text = (f"{icon} *{escape(finding.code)}* on {_code(finding.table)} — {escape(alert.amount(finding))}"
            f" · {finding.severity.value}")
    if finding.message:
        text += f"\n      _{escape(' '.join(finding.message.split())[:200])}_"
    return text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _sections(head: str, lines: list[str], more: int) -> list[dict[str, Any]]:
    blocks, chunk = [], f"*{head}*"
    for line in lines + ([f"_… and {more} more in the report_"] if more else []):
        if len(chunk) + 1 + len(line) > SECTION_LIMIT:
            blocks.append(_section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    blocks.append(_section(chunk))
    return blocks


def message(alert: Alert) -> dict[str, Any]:
    """Gives the Slack payload: `text` (notifications) and `blocks` (the message)."""
    icon = (":warning:" if alert.failure is not None else
            ":white_check_mark:" if not (alert.new or alert.worsened) else ":rotating_light:")
    header = f"{icon} {alert.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": header if len(header) <= 150 else header[:149] + "…"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Database*\n{_code(alert.database[:500])}"},
            {"type": "mrkdwn", "text": f"*Run*\n{_code(alert.run_id)}\n{utc_text(alert.started_at)}"},
        ]},
        _section(f"*Why*\n{_code(alert.failure[:2000])}" if alert.failure is not None else
                 "*Failing findings in this run*\n"
                 + "   ".join(f"{ICONS[s]} {s.value} *{n}*" for s, n in alert.failing)),
        {"type": "divider"},
    ]
    for head, findings in alert.sections:
        lines = [_line(alert, f, head == "Resolved") for f in findings[:MAX_ITEMS]]
        blocks += _sections(head, lines, max(0, len(findings) - MAX_ITEMS))
    if alert.report_url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the HTML report"},
             "url": alert.report_url, "action_id": "open_report"}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"mita-integrity {__version__} · alerts only for findings that are new, "
                                   "worse than the last run, or resolved"}]})
    return alert.clean({"text": f"[mita-integrity] {alert.title}", "blocks": blocks})


def send(url: str, alert: Alert, *, sleep: Sleep, delays: tuple[float, ...] = RETRY_DELAYS,
         budget: Budget | None = None) -> int:
    """Posts the message to the incoming webhook; gives 1 or raises DeliveryFailed."""
    post_json(url, message(alert), sleep=sleep, delays=delays, budget=budget)
    return 1
