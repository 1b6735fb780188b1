"""Where alerts go: environment variables and/or the `[alerts]` table of a TOML file, validated at start-up.

Every key has an environment variable; the environment wins over the file, key by key. A mistake — an
unknown key, a malformed URL, an address that is not one, e-mail recipients without an SMTP server —
is a `UsageError` when the scheduler starts, not a lost alert at 2 a.m. No message shows a password or
a webhook's secret path (`redact_url`).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..database.errors import UsageError
from ..database.urls import mask_secrets
from ..findings import Severity
from .mail import SmtpServer, parse_smtp_url
from .sentry import check_dsn
from .webhook import ATTEMPT_DEADLINE_S, DELIVERY_BUDGET_S, redact_url

CHANNELS: tuple[str, ...] = ("slack", "email", "sentry", "webhook")

# file key -> environment variable
KEYS: dict[str, str] = {
    "slack_webhook_url": "MITA_SLACK_WEBHOOK_URL",
    "smtp_url": "MITA_SMTP_URL",
    "email_to": "MITA_ALERT_EMAIL_TO",
    "email_from": "MITA_ALERT_EMAIL_FROM",
    "sentry_dsn": "SENTRY_DSN",
    "webhook_url": "MITA_ALERT_WEBHOOK_URL",
    "report_url": "MITA_REPORT_URL",
    "attempt_timeout_seconds": "MITA_ALERT_ATTEMPT_TIMEOUT_SECONDS",
    "delivery_budget_seconds": "MITA_ALERT_DELIVERY_BUDGET_SECONDS",
}
SECONDS_KEYS = {"attempt_timeout_seconds": "attempt_timeout_s", "delivery_budget_seconds": "delivery_budget_s"}
FILE_ONLY_KEYS = ("routing",)

# critical → every channel; high → Slack and e-mail; the rest only in the report and the digest.
DEFAULT_ROUTING: dict[Severity, tuple[str, ...]] = {
    Severity.CRITICAL: CHANNELS,
    Severity.HIGH: ("slack", "email"),
    Severity.MEDIUM: (),
    Severity.LOW: (),
    Severity.INFO: (),
}

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def _http_url(value: str, label: str) -> str:
    hint = "write https://HOST/PATH"
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(f"{label} is not a valid URL ({redact_url(value)}): {exc}", hint) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"{label} must be an http:// or https:// URL (it starts with {parts.scheme or '?'}://)", hint)
    if not parts.hostname or any(c.isspace() for c in value.strip()):
        raise UsageError(f"{label} is not a valid URL ({redact_url(value)})", hint)
    return value.strip()


def _address(value: str, label: str) -> str:
    name, addr = parseaddr(value.strip())
    if not _ADDRESS.match(addr or "") or (not name and value.strip() not in (addr, f"<{addr}>")):
        raise UsageError(f"{label}: {value.strip()!r} is not an e-mail address", "write name@example.com")
    return formataddr((name, addr)) if name else addr


def _strings(value: Any, label: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise UsageError(f"{label} must be a list of strings or a comma-separated string")


def _seconds(value: Any, label: str) -> float:
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise UsageError(f"{label} must be a number of seconds (it is {value!r})", "e.g. 20") from None
    if not 0 < seconds <= 86_400 or isinstance(value, bool):
        raise UsageError(f"{label} must be a number of seconds above 0 (it is {value!r})", "e.g. 20")
    return seconds


def _routing(value: Any, label: str) -> tuple[tuple[Severity, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise UsageError(f"{label} must be a table such as {{ high = [\"slack\", \"email\"] }}")
    routes = dict(DEFAULT_ROUTING)
    severities = {s.value: s for s in Severity}
    for key, channels in value.items():
        if key not in severities:
            raise UsageError(f"unknown severity {key!r} in {label}", f"use {', '.join(severities)}")
        names = _strings(channels, f"{label}.{key}")
        for name in names:
            if name not in CHANNELS:
                raise UsageError(f"unknown channel {name!r} in {label}.{key}", f"use {', '.join(CHANNELS)}")
        routes[severities[key]] = tuple(dict.fromkeys(names))
    return tuple(routes.items())


@dataclass(frozen=True)
class AlertConfig:
    """The validated alert targets and the routing by severity (build it with `load_config`)."""

    slack_webhook_url: str | None = field(default=None, repr=False)
    smtp_url: str | None = field(default=None, repr=False)
    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    sentry_dsn: str | None = field(default=None, repr=False)
    webhook_url: str | None = field(default=None, repr=False)
    report_url: str | None = None
    routing: tuple[tuple[Severity, tuple[str, ...]], ...] = tuple(DEFAULT_ROUTING.items())
    attempt_timeout_s: float = ATTEMPT_DEADLINE_S  # one delivery attempt, in all
    delivery_budget_s: float = DELIVERY_BUDGET_S  # all the deliveries of one run, in all

    @property
    def channels(self) -> tuple[str, ...]:
        """Gives the configured channels, in the order slack, email, sentry, webhook."""
        configured = {"slack": self.slack_webhook_url, "email": self.smtp_url and self.email_to,
                      "sentry": self.sentry_dsn, "webhook": self.webhook_url}
        return tuple(c for c in CHANNELS if configured[c])

    def channels_for(self, severity: Severity) -> tuple[str, ...]:
        """Gives the configured channels a finding of this severity is routed to."""
        routed = dict(self.routing).get(severity, ())
        return tuple(c for c in self.channels if c in routed)

    @property
    def smtp(self) -> SmtpServer | None:
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Gives the strings no alert may contain (passwords, webhook and DSN URLs)."""
        smtp = self.smtp
        values = (smtp.password if smtp else None, self.slack_webhook_url, self.webhook_url, self.sentry_dsn)
        return tuple(v for v in values if v)

    def describe(self) -> list[str]:
        """Gives one masked line per configured channel, for the scheduler's start-up message."""
        lines = []
        for channel in self.channels:
            if channel == "email":
                target = f"{self.smtp.display() if self.smtp else ''} → {len(self.email_to)} recipient(s)"
            else:
                target = redact_url({"slack": self.slack_webhook_url, "sentry": self.sentry_dsn,
                                     "webhook": self.webhook_url}[channel] or "")
            severities = [s.value for s in Severity if channel in self.channels_for(s)]
            lines.append(f"{channel}: {target} (severities: {', '.join(severities) or 'none'})")
        return lines


def _read_file(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"the alert config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the alert config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the alert config file {path} is not valid TOML: {mask_secrets(str(exc))}") from None
    misplaced = [k for k in data if k in KEYS or k in FILE_ONLY_KEYS]
    if misplaced:
        raise UsageError(f"{misplaced[0]} in {path} is outside the [alerts] table", "put it under [alerts]")
    return _read_table(data.get("alerts", {}), str(path))


def _read_table(table: Any, where: str) -> dict[str, tuple[Any, str]]:
    if not isinstance(table, dict):
        raise UsageError(f"alerts in {where} must be a table", "write [alerts] on a line of its own")
    known = (*KEYS, *FILE_ONLY_KEYS)
    for key in table:
        if key not in known:
            close = [k for k, v in KEYS.items() if v == key] or difflib.get_close_matches(key.lower(), known, n=1)
            raise UsageError(f"unknown key {key!r} in [alerts] of {where}",
                             f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}")
    return {key: (value, f"[alerts] {key} in {where}") for key, value in table.items()}


def load_config(env: Mapping[str, str], path: Path | None = None, *, table: Mapping[str, Any] | None = None,
                where: str = "") -> AlertConfig:
    """Gives the validated alert configuration: the file's `[alerts]` table, overridden by the environment.

    `table` is an `[alerts]` table already read (the project file's), `where` names the file it came from.
    """
    raw = _read_file(path) if path is not None else _read_table(table, where) if table is not None else {}
    for key, variable in KEYS.items():
        if env.get(variable, "").strip():
            raw[key] = (env[variable], variable)
    values: dict[str, Any] = {}
    for key, (value, label) in raw.items():
        if key == "routing":
            values[key] = _routing(value, label)
            continue
        if key == "email_to":
            values[key] = tuple(dict.fromkeys(_address(a, label) for a in _strings(value, label)))
            continue
        if key in SECONDS_KEYS:
            values[SECONDS_KEYS[key]] = _seconds(value, label)
            continue
        if not isinstance(value, str):
            raise UsageError(f"{label} must be a string")
        if not value.strip():
            continue
        if key in ("slack_webhook_url", "webhook_url"):
            values[key] = _http_url(value, label)
        elif key == "report_url":
            values[key] = _http_url(value, label)
            if urlsplit(value.strip()).password is not None:
                raise UsageError(f"{label} contains a password, which every alert would show",
                                 "link to a report that needs no credentials in its URL")
        elif key == "smtp_url":
            parse_smtp_url(value, label)
            values[key] = value.strip()
        elif key == "sentry_dsn":
            values[key] = check_dsn(value, label)
        elif key == "email_from":
            values[key] = _address(value, label)
    labels = {key: raw[key][1] for key in raw}

    def unset(key: str) -> str:
        return f"neither {KEYS[key]} nor [alerts] {key} is set"

    if values.get("email_to") and not values.get("smtp_url"):
        raise UsageError(f"{labels['email_to']} names recipients but {unset('smtp_url')}",
                         "set the SMTP server (smtp://USER:PASSWORD@HOST:PORT) too, or no recipients")
    if values.get("smtp_url") and not values.get("email_to"):
        raise UsageError(f"{labels['smtp_url']} is set but {unset('email_to')}",
                         "set the recipients (comma-separated addresses) too, or no SMTP server")
    if values.get("smtp_url") and not values.get("email_from"):
        raise UsageError(f"alert e-mails would have no sender: {unset('email_from')}",
                         "set it to the address alerts come from, e.g. mita-integrity@example.com")
    return AlertConfig(**values)
