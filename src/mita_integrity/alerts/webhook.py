"""HTTP delivery with retries (Slack, Sentry and the webhook use it), and the generic webhook itself.

The webhook receives `{"report": <the JSON report>, "delta": <what changed>, "title": …, "database": …,
"report_url": …}` as `application/json`. Only transient failures are retried (no connection, a timeout,
HTTP 408/425/429/5xx); a 4xx answer (a revoked Slack hook, a wrong path) fails at once. Redirects are not
followed: a POST silently turned into a GET would look delivered.

Time is bounded twice. A socket timeout bounds one read, not an answer: a receiver trickling a byte every
few seconds would hold an attempt (and the scheduler's lock) for as long as it likes. So every attempt has
a total deadline, enforced by a watchdog that shuts the attempt's socket when it passes, and the run's
deliveries share a `Budget`: no attempt, and no retry, starts or lasts beyond it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .. import __version__
from ..database.urls import mask_secrets, mask_url
from ..findings import Report
from ..report.masking import masked_report
from ..runs.findings_history import Delta

if TYPE_CHECKING:
    from .alert import Alert

RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)  # the waits before the 2nd, 3rd and 4th attempt
TIMEOUT_S = 10.0  # one socket operation (connect, one read)
ATTEMPT_DEADLINE_S = 20.0  # one attempt, from connecting to the answer's last byte
DELIVERY_BUDGET_S = 120.0  # all the deliveries of one run, retries and their waits included
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


class Budget:
    """The time one run's deliveries may take in all (`total_s`), and one attempt at most (`attempt_s`)."""

    def __init__(self, total_s: float = DELIVERY_BUDGET_S, attempt_s: float = ATTEMPT_DEADLINE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total_s, self.attempt_s, self.clock = total_s, attempt_s, clock
        self.ends = clock() + total_s

    def remaining(self) -> float:
        return max(0.0, self.ends - self.clock())

    def attempt(self) -> float:
        """Gives the deadline of an attempt that starts now (0: the budget is spent)."""
        return min(self.attempt_s, self.remaining())

    def spent(self) -> str:
        return f"the run's delivery budget of {self.total_s:g} s is spent"


class Watchdog:
    """Shuts the sockets it watches when `seconds` have passed: a blocked read then returns at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[Callable[[], socket.socket | None]] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, get_socket: Callable[[], socket.socket | None]) -> None:
        """Watches the socket `get_socket()` gives when the deadline passes (it may not exist yet)."""
        with self._lock:
            self._sockets.append(get_socket)
            expired = self.expired
        if expired:
            _shut(get_socket())

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._sockets)
        for get_socket in watched:
            _shut(get_socket())

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def late(self) -> str:
        return f"no complete answer within the attempt's deadline of {self.seconds:g} s"


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: nothing left to unblock
        sock.shutdown(socket.SHUT_RDWR)


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


def with_retries(action: Callable[[float], T], *, sleep: Sleep, delays: tuple[float, ...] = RETRY_DELAYS,
                 budget: Budget | None = None) -> T:
    """Gives action(deadline)'s value, retrying a `Transient` failure after each of `delays` while the budget
    lasts; else raises DeliveryFailed. `deadline` is the seconds the attempt may take in all."""
    budget = budget or Budget()
    for attempt, delay in enumerate((*delays, None), start=1):
        deadline = budget.attempt()
        if deadline <= 0:
            raise DeliveryFailed(f"not tried: {budget.spent()}" if attempt == 1 else
                                 f"gave up after {attempt - 1} attempts: {budget.spent()}")
        try:
            return action(deadline)
        except Transient as exc:
            if delay is None:
                raise DeliveryFailed(f"{exc} (gave up after {attempt} attempts)") from None
            if budget.remaining() <= delay:
                raise DeliveryFailed(f"{exc} (gave up after {attempt} attempts: {budget.spent()})") from None
            sleep(delay)
    raise AssertionError("unreachable")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError for the 3xx answer


def _watched(dog: Watchdog, connection: type[http.client.HTTPConnection]) -> Callable[..., http.client.HTTPConnection]:
    def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection(host, **kwargs)
        dog.watch(lambda: conn.sock)
        return conn
    return make


class _WatchedHttp(urllib.request.HTTPHandler):
    def __init__(self, dog: Watchdog) -> None:
        super().__init__()
        self.dog = dog

    def http_open(self, req: Any) -> Any:
        return self.do_open(_watched(self.dog, http.client.HTTPConnection), req)


class _WatchedHttps(urllib.request.HTTPSHandler):
    def __init__(self, dog: Watchdog) -> None:
        super().__init__()
        self.dog = dog

    def https_open(self, req: Any) -> Any:
        return self.do_open(_watched(self.dog, http.client.HTTPSConnection), req,
                            context=self._context)  # type: ignore[attr-defined]


def _opener(dog: Watchdog) -> urllib.request.OpenerDirector:
    """Gives an opener (environment proxies kept, redirects refused) whose connections the watchdog shuts."""
    return urllib.request.build_opener(_NoRedirect, _WatchedHttp(dog), _WatchedHttps(dog))


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def post(url: str, body: bytes, headers: Mapping[str, str], *, sleep: Sleep,
         delays: tuple[float, ...] = RETRY_DELAYS, timeout: float = TIMEOUT_S, budget: Budget | None = None) -> bytes:
    """POSTs body to url (retried, each attempt within its deadline, see the module); gives the answer's body
    or raises DeliveryFailed."""
    where = redact_url(url)

    def attempt(deadline: float) -> bytes:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"User-Agent": USER_AGENT, **headers})
        with Watchdog(deadline) as dog:
            try:
                with _opener(dog).open(request, timeout=min(timeout, deadline)) as response:
                    answer = bytes(response.read(65536))
                if dog.expired:  # the watchdog cut the answer short
                    raise Transient(f"{where}: {dog.late()}")
                return answer
            except urllib.error.HTTPError as exc:
                detail = one_line(exc.read(200).decode("utf-8", "replace"), 120) if exc.fp and not dog.expired else ""
                text = f"HTTP {exc.code} {exc.reason} from {where}{': ' + detail if detail else ''}"
                if exc.code in (408, 425, 429) or exc.code >= 500:
                    raise Transient(text) from None
                raise DeliveryFailed(text) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if dog.expired:
                    raise Transient(f"{where}: {dog.late()}") from None
                raise Transient(f"{where} unreachable: {_reason(exc)}") from None

    return with_retries(attempt, sleep=sleep, delays=delays, budget=budget)


def post_json(url: str, payload: Any, *, sleep: Sleep, delays: tuple[float, ...] = RETRY_DELAYS,
              budget: Budget | None = None) -> bytes:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return post(url, body, {"Content-Type": "application/json; charset=utf-8"}, sleep=sleep, delays=delays,
                budget=budget)


def payload(alert: Alert, report: Report | None, delta: Delta) -> dict[str, Any]:
    """Gives the webhook's JSON: the whole report (e-mails and passwords masked) and the whole delta; for a
    run that could not run, `failure` says why and there is no report."""
    data = None
    if report is not None:
        data = masked_report(report).to_json()
        data["database"]["url"] = mask_url(data["database"]["url"]) if data["database"]["url"] else ""
    body = {"title": alert.title, "database": alert.database, "report_url": alert.report_url, "report": data,
            "delta": delta.to_json()}
    if alert.failure is not None:
        body["failure"] = alert.failure
    return alert.clean(body)


def send(url: str, alert: Alert, report: Report | None, delta: Delta, *, sleep: Sleep,
         delays: tuple[float, ...] = RETRY_DELAYS, budget: Budget | None = None) -> int:
    """Posts the payload to the webhook; gives 1 (messages sent) or raises DeliveryFailed."""
    post_json(url, payload(alert, report, delta), sleep=sleep, delays=delays, budget=budget)
    return 1
