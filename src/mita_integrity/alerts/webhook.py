"""HTTP delivery with retries (Slack, Sentry and the webhook use it), and the generic webhook itself.

The webhook receives `{"report": <the JSON report>, "delta": <what changed>, "title": …, "database": …,
"report_url": …}` as `application/json`. Only transient failures are retried (no connection, a timeout,
HTTP 408/425/429/5xx); a 4xx answer (a revoked Slack hook, a wrong path) fails at once. Redirects are not
followed: a POST silently turned into a GET would look delivered.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .. import __version__
from ..findings import Report
from ..history import Delta
from ..report.masking import masked_report
from ..urls import mask_secrets, mask_url

if TYPE_CHECKING:
    from .dispatch import Alert

RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)  # the waits before the 2nd, 3rd and 4th attempt
TIMEOUT_S = 10.0
USER_AGENT = f"mita-integrity/{__version__}"

Sleep = Callable[[float], None]
T = TypeVar("T")


class DeliveryFailed(Exception):
    """A channel gave up; the message is one line without secrets; `sent` says how much got through first."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(one_line(message))
        self.sent = sent


class Transient(Exception):
    """A failure worth another attempt."""


def redact_url(url: str) -> str:
    """Gives `scheme://host[:port]/…`: where a URL points, without its user, password, token or path."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return mask_secrets(url.split("://", 1)[0] + "://…")
    host = f"[{host}]" if ":" in host else host
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}" if parts.scheme else "…"


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(mask_secrets(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def with_retries(action: Callable[[], T], *, sleep: Sleep, delays: tuple[float, ...] = RETRY_DELAYS) -> T:
    """Gives action()'s value, retrying a `Transient` failure after each of `delays`; else DeliveryFailed."""
    for attempt, delay in enumerate((*delays, None), start=1):
        try:
            return action()
        except Transient as exc:
            if delay is None:
                raise DeliveryFailed(f"{exc} (gave up after {attempt} attempts)") from None
            sleep(delay)
    raise AssertionError("unreachable")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError for the 3xx answer


_OPENER = urllib.request.build_opener(_NoRedirect)


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def post(url: str, body: bytes, headers: Mapping[str, str], *, sleep: Sleep,
         delays: tuple[float, ...] = RETRY_DELAYS, timeout: float = TIMEOUT_S) -> bytes:
    """POSTs body to url (retried, see the module); gives the answer's body or raises DeliveryFailed."""
    where = redact_url(url)

    def attempt() -> bytes:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"User-Agent": USER_AGENT, **headers})
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return bytes(response.read(65536))
        except urllib.error.HTTPError as exc:
            detail = one_line(exc.read(200).decode("utf-8", "replace"), 120) if exc.fp else ""
            text = f"HTTP {exc.code} {exc.reason} from {where}{': ' + detail if detail else ''}"
            if exc.code in (408, 425, 429) or exc.code >= 500:
                raise Transient(text) from None
            raise DeliveryFailed(text) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise Transient(f"{where} unreachable: {_reason(exc)}") from None

    return with_retries(attempt, sleep=sleep, delays=delays)


def post_json(url: str, payload: Any, *, sleep: Sleep, delays: tuple[float, ...] = RETRY_DELAYS) -> bytes:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return post(url, body, {"Content-Type": "application/json; charset=utf-8"}, sleep=sleep, delays=delays)


def payload(alert: Alert, report: Report, delta: Delta) -> dict[str, Any]:
    """Gives the webhook's JSON: the whole report (e-mails and passwords masked) and the whole delta."""
    data = masked_report(report).to_json()
    data["database"]["url"] = mask_url(data["database"]["url"]) if data["database"]["url"] else ""
    return alert.clean({"title": alert.title, "database": alert.database, "report_url": alert.report_url,
                        "report": data, "delta": delta.to_json()})


def send(url: str, alert: Alert, report: Report, delta: Delta, *, sleep: Sleep,
         delays: tuple[float, ...] = RETRY_DELAYS) -> int:
    """Posts the payload to the webhook; gives 1 (messages sent) or raises DeliveryFailed."""
    post_json(url, payload(alert, report, delta), sleep=sleep, delays=delays)
    return 1
