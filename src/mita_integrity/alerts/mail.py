"""E-mail: one multipart/alternative message (text and HTML) per run, over SMTP.

`smtp://` connects in plain and upgrades with STARTTLS whenever the server offers it; `smtps://` speaks
TLS from the first byte. Certificates are verified (a private CA: point SSL_CERT_FILE at it). AUTH is
used when the URL carries a user. Subject: `[mita-integrity] 2 new critical findings on mita_demo`.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .. import __version__
from ..database.errors import UsageError
from ..database.urls import mask_secrets
from ..report.layout import utc_text
from .webhook import RETRY_DELAYS, Budget, DeliveryFailed, Sleep, Transient, Watchdog, redact_url, with_retries

if TYPE_CHECKING:
    from .alert import Alert

TIMEOUT_S = 20.0
COLORS = {"critical": "#b3261e", "high": "#c2410c", "medium": "#a16207", "low": "#1d4ed8", "info": "#4b5563"}


@dataclass(frozen=True)
class SmtpServer:
    """An SMTP server from `smtp://` (STARTTLS when offered) or `smtps://` (implicit TLS)."""

    host: str
    port: int
    implicit_tls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def display(self) -> str:
        """Gives the URL with the password masked."""
        auth = f"{self.user}{':***' if self.password else ''}@" if self.user else ""
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{auth}{self.host}:{self.port}"


def parse_smtp_url(url: str, label: str = "the SMTP URL") -> SmtpServer:
    """Gives the server of an `smtp://user:pass@host:port` or `smtps://…` URL; raises UsageError."""
    hint = "write smtp://USER:PASSWORD@HOST:587 (STARTTLS when offered) or smtps://USER:PASSWORD@HOST:465 (TLS)"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{label} is malformed ({redact_url(url)}): {mask_secrets(str(exc), url)}", hint) from None
    if parts.scheme.lower() not in ("smtp", "smtps"):
        raise UsageError(f"{label} must start with smtp:// or smtps:// (it starts with {parts.scheme or '?'}://)", hint)
    if not parts.hostname:
        raise UsageError(f"{label} names no host", hint)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise UsageError(f"{label} has a path or options, which SMTP URLs do not take ({redact_url(url)})", hint)
    implicit = parts.scheme.lower() == "smtps"
    return SmtpServer(parts.hostname, port or (465 if implicit else 25), implicit,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password is not None else None)


def subject(alert: Alert) -> str:
    return " ".join(f"[mita-integrity] {alert.title}".split())


def text_body(alert: Alert) -> str:
    lines = [alert.title, "", f"Database: {alert.database}", f"Run:      {alert.run_id} ({utc_text(alert.started_at)})"]
    lines.append(f"Why:      {alert.failure}" if alert.failure is not None else
                 f"Failing findings in this run: {alert.counts()}")
    for head, findings in alert.sections:
        lines += ["", head]
        for f in findings:
            lines.append(f"  [{f.severity.value}] {f.code} on {f.table}: {alert.amount(f)}")
            if f.message:
                lines.append(f"      {' '.join(f.message.split())}")
    if alert.report_url:
        lines += ["", f"Report: {alert.report_url}"]
    lines += ["", "--", f"mita-integrity {__version__}: alerts only for findings that are new, worse than the last "
              "run, or resolved."]
    return "\n".join(lines) + "\n"


def html_body(alert: Alert) -> str:
    e = html.escape
    cell = "padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:left"
    parts = [f"<h2 style=\"font-family:sans-serif\">{e(alert.title)}</h2>",
             "<table style=\"font-family:sans-serif;font-size:14px;border-collapse:collapse\">",
             f"<tr><th style=\"{cell}\">Database</th><td style=\"{cell}\"><code>{e(alert.database)}</code></td></tr>",
             f"<tr><th style=\"{cell}\">Run</th><td style=\"{cell}\"><code>{e(alert.run_id)}</code> "
             f"({e(utc_text(alert.started_at))})</td></tr>",
             f"<tr><th style=\"{cell}\">Failing findings</th><td style=\"{cell}\">{e(alert.counts())}</td></tr>"
             if alert.failure is None else
             f"<tr><th style=\"{cell}\">Why</th><td style=\"{cell}\"><code>{e(alert.failure)}</code></td></tr>",
             "</table>"]
    for head, findings in alert.sections:
        parts.append(f"<h3 style=\"font-family:sans-serif\">{e(head)}</h3>")
        parts.append("<table style=\"font-family:sans-serif;font-size:14px;border-collapse:collapse\"><tr>"
                     + "".join(f"<th style=\"{cell}\">{h}</th>" for h in ("Severity", "Code", "Table", "Count",
                                                                            "What"))
                     + "</tr>")
        for f in findings:
            color = COLORS.get(f.severity.value, "#000")
            parts.append(f"<tr><td style=\"{cell};color:{color};font-weight:bold\">{e(f.severity.value)}</td>"
                         f"<td style=\"{cell}\"><code>{e(f.code)}</code></td>"
                         f"<td style=\"{cell}\"><code>{e(f.table)}</code></td>"
                         f"<td style=\"{cell}\">{e(alert.amount(f))}</td>"
                         f"<td style=\"{cell}\">{e(' '.join(f.message.split()))}</td></tr>")
        parts.append("</table>")
    if alert.report_url:
        parts.append(f"<p style=\"font-family:sans-serif\"><a href=\"{e(alert.report_url)}\">Open the HTML report</a>"
                     "</p>")
    parts.append(f"<p style=\"font-family:sans-serif;color:#6b7280;font-size:12px\">mita-integrity {__version__}: "
                 "alerts only for findings that are new, worse than the last run, or resolved.</p>")
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def build(alert: Alert, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """Gives the message: From sender, To the recipients, text and HTML alternatives."""
    message = EmailMessage()
    message["Subject"] = alert.clean(subject(alert))
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("mita-integrity", domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Mita-Integrity-Run"] = alert.run_id
    message.set_content(alert.clean(text_body(alert)))
    message.add_alternative(alert.clean(html_body(alert)), subtype="html")
    return message


def send(smtp_url: str, sender: str, recipients: tuple[str, ...], alert: Alert, *, sleep: Sleep,
         delays: tuple[float, ...] = RETRY_DELAYS, timeout: float = TIMEOUT_S, budget: Budget | None = None) -> int:
    """Sends the alert e-mail (retried, each attempt within its deadline); gives 1, or raises DeliveryFailed
    (also when a recipient is refused)."""
    server = parse_smtp_url(smtp_url)
    message = build(alert, sender, recipients)
    where = f"{server.host}:{server.port}"

    def attempt(deadline: float) -> dict[str, tuple[int, bytes]]:
        with Watchdog(deadline) as dog:
            try:
                return _attempt(deadline, dog)
            except Transient:
                if dog.expired:
                    raise Transient(f"the SMTP server {where}: {dog.late()}") from None
                raise
            except DeliveryFailed:
                if dog.expired:  # a read cut short by the watchdog can look like any answer
                    raise Transient(f"the SMTP server {where}: {dog.late()}") from None
                raise

    def _attempt(deadline: float, dog: Watchdog) -> dict[str, tuple[int, bytes]]:
        context = ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            wait = min(timeout, deadline)
            if server.implicit_tls:
                smtp = _watched(smtplib.SMTP_SSL, dog)(server.host, server.port, timeout=wait,
                                                       context=context)  # type: ignore[call-arg]
            else:
                smtp = _watched(smtplib.SMTP, dog)(server.host, server.port, timeout=wait)
            with smtp:
                smtp.ehlo()
                if not server.implicit_tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if server.user:
                    smtp.login(server.user, server.password or "")
                return smtp.send_message(message, from_addr=parseaddr(sender)[1], to_addrs=list(recipients))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"the SMTP server {where} refused the login of {server.user!r}: "
                                 f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryFailed(f"the SMTP server {where} offers no AUTH (a user is given in the SMTP URL)") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(f"the SMTP server {where} refused all {len(exc.recipients)} recipient(s)") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise Transient(f"the SMTP server {where} closed the connection: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            text = f"the SMTP server {where} answered {exc.smtp_code} {_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise Transient(text) from None
            raise DeliveryFailed(text) from None
        except ssl.SSLError as exc:
            raise DeliveryFailed(f"TLS with the SMTP server {where} failed: {exc.reason or exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise Transient(f"the SMTP server {where} is unreachable: {exc.strerror or exc}"
                            if isinstance(exc, OSError) else f"SMTP error from {where}: {exc}") from None

    refused = with_retries(attempt, sleep=sleep, delays=delays, budget=budget)
    if refused:
        raise DeliveryFailed(f"the SMTP server {where} refused {len(refused)} of {len(recipients)} recipients",
                             sent=1)
    return 1


def _watched(smtp_class: type[smtplib.SMTP], dog: Watchdog) -> type[smtplib.SMTP]:
    """Gives a subclass whose connection the watchdog shuts: `self.sock` at that moment (STARTTLS replaces it)."""

    class Watched(smtp_class):  # type: ignore[valid-type,misc]
        def _get_socket(self, host: str, port: int, timeout: float) -> Any:
            dog.watch(lambda: getattr(self, "sock", None))
            return super()._get_socket(host, port, timeout)

    return Watched


def _text(error: bytes | str) -> str:
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
