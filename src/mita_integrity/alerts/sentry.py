"""Sentry: one event per new or worsened finding routed to Sentry (critical by default).

Levels: critical → `fatal`, high → `error`, medium → `warning`, low and info → `info`. Tags: code, table,
database (masked), severity, change (`new` or `worsened`). `fingerprint = ["mita-integrity", code, table]`,
so Sentry keeps one issue per rule and table and counts the runs that saw it grow.

The events go through their own `sentry_sdk.Client` — never `sentry_sdk.init`, so nothing global is
touched and nothing the host application put on its scopes (users, breadcrumbs, argv) can leak in. The
client has no integrations and a synchronous transport that posts each envelope (gzip) with the retries
of the other channels, so every event is sent, or known to have failed, before `send` returns. An event holds
only the fields written here and the SDK's identification of it (KEPT): no stack, no local variable, whatever
an SDK version attaches by default.

Only the SDK's public API is used: `sentry_sdk.Client` and `sentry_sdk.Transport`, both exported by the
package. A subclass of `Transport` implementing `capture_envelope` is the SDK's own way to plug a transport
in since 2.0 (the class became an abstract base for it; a function as `transport` is deprecated in 2.x
and gone in 3.x), and the envelope, the DSN's endpoint and auth header are what it hands that subclass.
"""

from __future__ import annotations

import gzip
import io
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..database.errors import UsageError
from ..database.urls import mask_secrets
from ..findings import Severity
from ..runs.findings_history import Finding
from .webhook import RETRY_DELAYS, Budget, DeliveryFailed, Sleep, post, redact_url

if TYPE_CHECKING:
    from sentry_sdk.envelope import Envelope

    from .alert import Alert

# What an event sent holds: the fields `event` and `failure_event` write, and the SDK's identification of it.
# Anything else an SDK version adds by default (sentry-sdk 3.0 attaches every thread's stack with its frames'
# local variables, findings' messages among them) is dropped before sending (`_only_ours`).
KEPT = frozenset({"message", "level", "logger", "transaction", "tags", "fingerprint", "extra",
                  "event_id", "timestamp", "platform", "sdk", "release", "environment", "server_name"})

LEVELS = {Severity.CRITICAL: "fatal", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "info", Severity.INFO: "info"}


def check_dsn(value: str, label: str) -> str:
    """Gives the DSN if sentry-sdk can parse it; raises UsageError (without the key) otherwise."""
    try:
        _transport_class()(value.strip(), lambda _seconds: None, (), None)  # the SDK parses the DSN here
    except ValueError as exc:  # the SDK's BadDsn is a ValueError
        raise UsageError(f"{label} is not a Sentry DSN ({redact_url(value)}): {mask_secrets(str(exc), value)}",
                         "copy it from Sentry: Settings → Projects → Client Keys (DSN), https://KEY@HOST/PROJECT_ID"
                         ) from None
    return value.strip()


def event(alert: Alert, finding: Finding, change: str) -> dict[str, Any]:
    """Gives the Sentry event of one new or worsened finding."""
    message = f"{finding.code} on {finding.table}: {alert.amount(finding)}"
    if finding.message:
        message += f" — {' '.join(finding.message.split())}"
    return alert.clean({
        "message": message,
        "level": LEVELS[finding.severity],
        "logger": "mita-integrity",
        "transaction": f"{finding.code} {finding.table}",
        "tags": {"code": finding.code, "table": finding.table, "database": alert.database[:200],
                 "severity": finding.severity.value, "change": change},
        "fingerprint": ["mita-integrity", finding.code, finding.table],
        "extra": {"count": finding.count, "previous": finding.previous, "run_id": alert.run_id,
                  "first_seen": finding.first_seen.isoformat() if finding.first_seen else None,
                  "report_url": alert.report_url},
    })


def failure_event(alert: Alert) -> dict[str, Any]:
    """Gives the Sentry event of a scheduled check that could not run (one issue for all such failures)."""
    return alert.clean({
        "message": f"the check of {alert.name} could not run: {alert.failure}",
        "level": "error",
        "logger": "mita-integrity",
        "transaction": "scheduled check",
        "tags": {"database": alert.database[:200], "change": "failed"},
        "fingerprint": ["mita-integrity", "check-could-not-run"],
        "extra": {"run": alert.run_id},
    })


def events(alert: Alert) -> list[dict[str, Any]]:
    if alert.failure is not None:
        return [failure_event(alert)]
    return ([event(alert, f, "new") for f in alert.new]
            + [event(alert, f, "worsened") for f in alert.worsened])


def _only_ours(event: Any, _hint: dict[str, Any]) -> Any:  # (the SDK types it as its private Event)
    """The client's before_send: the event without what the SDK added beyond KEPT (see there)."""
    return {key: value for key, value in event.items() if key in KEPT}


def _transport_class() -> Any:
    from sentry_sdk import Transport

    class PostingTransport(Transport):
        """Posts each envelope at once, with retries; remembers the first failure and then stops."""

        def __init__(self, dsn: str, sleep: Sleep, delays: tuple[float, ...], budget: Budget | None) -> None:
            super().__init__({"dsn": dsn})
            self.sleep, self.delays, self.budget = sleep, delays, budget
            self.sent = 0
            self.failure: DeliveryFailed | None = None

        def capture_envelope(self, envelope: Envelope) -> None:
            if self.failure is not None or self.parsed_dsn is None:
                return
            auth = self.parsed_dsn.to_auth(f"mita-integrity/{__version__}")
            buffer = io.BytesIO()
            with gzip.GzipFile(fileobj=buffer, mode="wb") as zipped:
                envelope.serialize_into(zipped)
            headers = {"Content-Type": "application/x-sentry-envelope", "Content-Encoding": "gzip",
                       "X-Sentry-Auth": auth.to_header()}
            try:
                post(auth.get_api_url(), buffer.getvalue(), headers, sleep=self.sleep,
                     delays=self.delays, budget=self.budget)
                self.sent += 1
            except DeliveryFailed as exc:
                self.failure = exc

    return PostingTransport


def send(dsn: str, alert: Alert, *, sleep: Sleep, delays: tuple[float, ...] = RETRY_DELAYS,
         budget: Budget | None = None) -> int:
    """Sends the alert's events; gives how many, or raises DeliveryFailed at the first that fails."""
    import sentry_sdk

    transport = _transport_class()(dsn, sleep, delays, budget)
    client = sentry_sdk.Client(
        dsn=dsn, transport=transport, release=f"mita-integrity@{__version__}", default_integrations=False,
        attach_stacktrace=False, before_send=_only_ours, auto_enabling_integrations=False, send_client_reports=False,
        auto_session_tracking=False, enable_backpressure_handling=False, max_breadcrumbs=0, spotlight=False)
    try:
        for payload in events(alert):
            client.capture_event(payload)  # type: ignore[arg-type]  # no scope: nothing of the application's scopes is merged in
            if transport.failure is not None:
                raise DeliveryFailed(f"Sentry: {transport.failure}", sent=transport.sent)
        client.flush(timeout=5)
    finally:
        client.close(timeout=5)
    return int(transport.sent)
