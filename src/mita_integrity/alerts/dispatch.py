"""Which channel hears about what, and the delivery to all of them: `deliver` is what the scheduler calls.

Only change alerts: the new and worsened findings of the `Delta`, routed by severity (default: critical
→ Slack, e-mail, Sentry and the webhook; high → Slack and e-mail; medium and below → nobody, they stay
in the report), and a "resolved" note for a finding that disappeared, to the channels its severity is
routed to except Sentry (so critical and high by default; Sentry issues are resolved in Sentry). An
unchanged run, or one whose changes route nowhere, sends nothing. Each channel is tried on its own, in a
thread of its own, all within one `Budget` (webhook.py): a failure becomes a `Delivery(ok=False)` and never
stops the others or raises, and a slow receiver holds up nothing beyond the budget.

A scheduled check that could not run at all (the database unreachable) is an alert too (`failure_alerts`):
to every channel critical findings go to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..database.errors import UsageError
from ..database.urls import mask_secrets, mask_url, parse_url
from ..findings import Report, Severity
from ..report.masking import mask_email
from ..runs.findings_history import Delta, Finding, fingerprint
from ..wording import counted
from . import mail, sentry, slack, webhook
from .alert import Alert
from .config import AlertConfig
from .webhook import Budget, DeliveryFailed, Sleep, one_line

GRACE_S = 10.0  # beyond the budget, the wait for a channel's thread (its attempts are already cut at the budget)


@dataclass(frozen=True)
class Delivery:
    """What became of one channel: sent counts messages or events; error is one line, no secrets."""

    channel: str
    ok: bool
    sent: int = 0
    error: str | None = None

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else "failed"

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "ok": self.ok, "sent": self.sent, "error": self.error}

    def describe(self) -> str:
        """Gives `slack ok` or `slack FAILED (HTTP 500 … (gave up after 4 attempts))`."""
        return f"{self.channel} ok" if self.ok else f"{self.channel} FAILED ({self.error or 'no reason given'})"


def _plural(n: int, word: str) -> str:
    return counted(n, word)


def database_label(database: str, report: Report | None) -> tuple[str, str]:
    """Gives the database as alerts show it (a URL with its password masked) and its short name.

    The password itself is not scrubbed word by word from every text (a password such as `postgres` would
    mangle `postgresql://`); it can only appear inside a URL, and URL passwords are masked everywhere.
    """
    text = database.strip() or (report.database.url or report.database.name if report else "")
    dbname = None
    if "://" in text:
        with contextlib.suppress(UsageError):
            dbname = parse_url(text).params.get("dbname")
        label = mask_url(text)
    else:
        label = mask_secrets(text)
    return label, (report.database.name if report else None) or dbname or label


def _masked(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    return tuple(dataclasses.replace(f, message=mask_email(f.message)) for f in findings)


def plan(config: AlertConfig, delta: Delta, report: Report, *, database: str) -> dict[str, Alert]:
    """Gives, per configured channel with something to say, what it is told (see the module)."""
    return plan_each(config, dict.fromkeys(config.channels, delta), report, database=database)


def plan_each(config: AlertConfig, deltas: Mapping[str, Delta], report: Report, *,
              database: str) -> dict[str, Alert]:
    """Gives, per channel of `deltas` with something to say, what it is told of its own Delta (the changes
    since what that channel was last told, outbox.py), routed by severity."""
    label, name = database_label(database, report)
    failing = tuple(Finding(fingerprint(r.code, r.table), r.code, r.table, r.severity, r.count)
                    for r in report.results if r.failed)
    alerts = {}
    for channel, delta in deltas.items():
        by_severity = Counter(f.severity for f in (delta.failing or failing))
        base = Alert(run_id=delta.run_id, database=label, name=name, started_at=report.started_at,
                     failing=tuple((s, by_severity[s]) for s in Severity),
                     report_url=config.report_url.replace("{run_id}", delta.run_id) if config.report_url else None,
                     units=tuple((fingerprint(r.code, r.table), r.unit) for r in report.results),
                     secrets=config.secrets)

        def routed(findings: tuple[Finding, ...], channel: str = channel) -> tuple[Finding, ...]:
            return _masked(tuple(f for f in findings if channel in config.channels_for(f.severity)))

        alert = dataclasses.replace(base, new=routed(delta.new), worsened=routed(delta.worsened),
                                    resolved=() if channel == "sentry" else routed(delta.resolved))
        if not alert.empty:
            alerts[channel] = alert
    return alerts


def failure_alerts(config: AlertConfig, *, database: str, reason: str, slot: datetime) -> dict[str, Alert]:
    """Gives what each channel critical findings go to is told when the check of `slot` could not run."""
    label, name = database_label(database, None)
    alert = Alert(run_id=f"scheduled for {slot.isoformat()}", database=label, name=name, started_at=slot,
                  secrets=config.secrets)
    alert = dataclasses.replace(alert, failure=alert.clean(one_line(reason)))
    return dict.fromkeys(config.channels_for(Severity.CRITICAL), alert)


def _send(config: AlertConfig, channel: str, alert: Alert, report: Report | None, delta: Delta, *,
          sleep: Sleep, budget: Budget) -> Delivery:
    """Sends one channel's alert; gives its Delivery (never raises)."""
    try:
        if channel == "slack":
            sent = slack.send(config.slack_webhook_url or "", alert, sleep=sleep, budget=budget)
        elif channel == "email":
            sent = mail.send(config.smtp_url or "", config.email_from or "", config.email_to, alert, sleep=sleep,
                             budget=budget)
        elif channel == "sentry":
            sent = sentry.send(config.sentry_dsn or "", alert, sleep=sleep, budget=budget)
        else:
            masked = dataclasses.replace(delta, new=_masked(delta.new), worsened=_masked(delta.worsened),
                                         resolved=_masked(delta.resolved))
            sent = webhook.send(config.webhook_url or "", alert, report, masked, sleep=sleep, budget=budget)
        return Delivery(channel, True, sent)
    except DeliveryFailed as exc:
        return Delivery(channel, False, exc.sent, alert.clean(one_line(str(exc))))
    except Exception as exc:  # noqa: BLE001 - one channel's bug must not stop the others
        return Delivery(channel, False, 0, alert.clean(one_line(f"{type(exc).__name__}: {exc}")))


def send_all(config: AlertConfig, alerts: Mapping[str, Alert], report: Report | None, deltas: Mapping[str, Delta],
             *, sleep: Sleep = time.sleep, budget: Budget | None = None,
             on_delivery: Callable[[Delivery], None] | None = None) -> list[Delivery]:
    """Sends every channel's alert at once, each in its own thread, within one budget; gives one Delivery per
    channel, in the order of `alerts`. `on_delivery` is called (in this thread) as each channel finishes."""
    budget = budget or Budget(config.delivery_budget_s, config.attempt_timeout_s)
    finished: queue.Queue[Delivery] = queue.Queue()
    for channel, alert in alerts.items():
        def work(channel: str = channel, alert: Alert = alert) -> None:
            finished.put(_send(config, channel, alert, report, deltas.get(channel) or Delta(alert.run_id),
                               sleep=sleep, budget=budget))
        threading.Thread(target=work, name=f"mita-integrity-alert-{channel}", daemon=True).start()
    results: dict[str, Delivery] = {}
    while len(results) < len(alerts):
        try:
            delivery = finished.get(timeout=budget.remaining() + GRACE_S)
        except queue.Empty:
            break
        results[delivery.channel] = delivery
        if on_delivery is not None:
            on_delivery(delivery)
    return [results.get(c) or Delivery(c, False, 0, f"still sending when {budget.spent()}") for c in alerts]


def deliver(config: AlertConfig, delta: Delta, report: Report, *, database: str,
            sleep: Sleep = time.sleep, budget: Budget | None = None) -> list[Delivery]:
    """Sends the run's alerts to every channel that has something to say; gives one Delivery per channel tried.

    Never raises for a channel's failure; the caller reports failed deliveries (stderr, the run record).
    """
    alerts = plan(config, delta, report, database=database)
    return send_all(config, alerts, report, dict.fromkeys(alerts, delta), sleep=sleep, budget=budget)
