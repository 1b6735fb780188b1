"""Real receivers on loopback for the alert tests: an HTTP server (Slack, the webhook, Sentry) and SMTP.

`HttpReceiver` records every POST — path, headers, body (gunzipped when Content-Encoding says gzip) —
and answers 200, or a status set per path (`fail(path, status, times)`); `accepted(path)` are the POSTs
it answered 200 in full. A path can also `hold` its answers (no answer until `release`: a receiver that
hangs) or `trickle` them (one byte every so often: a receiver that is slow on purpose). A DSN pointing at it
(`http://publickey@127.0.0.1:PORT/1`) makes Sentry post envelopes to `/api/1/envelope/`; `sentry_events`
parses them. `SmtpReceiver` is aiosmtpd's threaded Controller recording each message, optionally
requiring AUTH and optionally with TLS (implicit, or STARTTLS) from a self-signed certificate.
"""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_envelope(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Gives the (item header, payload) pairs of a Sentry envelope: a header line, then per item a header line
    and a payload of `length` bytes (or up to the next newline when the header has no length)."""

    def line_at(pos: int) -> tuple[bytes, int]:
        end = body.find(b"\n", pos)
        end = len(body) if end < 0 else end
        return body[pos:end], end + 1

    _envelope_headers, pos = line_at(0)
    items = []
    while pos < len(body):
        line, pos = line_at(pos)
        if not line.strip():
            continue
        header = json.loads(line)
        if "length" in header:
            payload, pos = body[pos:pos + header["length"]], pos + header["length"] + 1
        else:
            payload, pos = line_at(pos)
        items.append((header, payload))
    return items


class HttpReceiver:
    """An HTTP server on 127.0.0.1 (port chosen by the system) that records POSTs."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.answered: list[tuple[Post, int]] = []
        self._failures: dict[str, list[int]] = {}
        self._held: dict[str, threading.Event] = {}
        self._trickle: dict[str, float] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                post = Post(self.path, dict(self.headers.items()), body)
                with receiver._lock:
                    receiver.posts.append(post)
                    pending = receiver._failures.get(self.path, [])
                    status = pending.pop(0) if pending else 200
                    held = receiver._held.get(self.path)
                    trickle = receiver._trickle.get(self.path)
                if held is not None:
                    held.wait(120)
                    self.close_connection = True
                    return  # no answer at all: the client sees the connection close, if it waited that long
                answer = b"ok" if status == 200 else b"server_error"
                if self.path.startswith("/api/") and status == 200:
                    answer = b'{"id": "0"}'
                head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                        f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n").encode() + answer
                try:
                    if trickle is None:
                        self.wfile.write(head)
                    else:
                        for i in range(len(head)):
                            self.wfile.write(head[i:i + 1])
                            self.wfile.flush()
                            time.sleep(trickle)
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up
                self.close_connection = True
                with receiver._lock:
                    receiver.answered.append((post, status))

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def dsn(self, project: int = 1) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/{project}"

    def fail(self, path: str, status: int, times: int) -> None:
        """Answers the next `times` POSTs to path with `status`."""
        self._failures[path] = [status] * times

    def hold(self, path: str) -> None:
        """Answers nothing to POSTs to path until `release` (a receiver that hangs)."""
        self._held[path] = threading.Event()

    def release(self, path: str) -> None:
        event = self._held.pop(path, None)
        if event is not None:
            event.set()

    def trickle(self, path: str, every: float) -> None:
        """Answers POSTs to path one byte every `every` seconds (a receiver that is slow on purpose)."""
        self._trickle[path] = every

    def at(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]

    def accepted(self, path: str) -> list[Post]:
        """Gives the POSTs to path that were answered 200 in full."""
        with self._lock:
            return [p for p, status in self.answered if p.path == path and status == 200]

    def sentry_events(self, project: int = 1) -> list[dict[str, Any]]:
        """Gives the event items of every envelope posted to the project's envelope endpoint."""
        return [json.loads(payload) for post in self.at(f"/api/{project}/envelope/")
                for header, payload in parse_envelope(post.body) if header.get("type") == "event"]

    def everything(self) -> str:
        """Gives all that was received (paths, headers, bodies) as one text, to search for secrets."""
        return "\n".join(f"{p.path}\n{json.dumps(p.headers)}\n{p.body.decode('utf-8', 'replace')}"
                         for p in self.posts)

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for path in list(self._held):
            self.release(path)
        self._trickle.clear()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def free_port() -> int:
    """Gives a port nothing listens on now (bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """Gives (certificate, key) for 127.0.0.1, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b"",
                               login, server.transport.get_extra_info("ssl_object") is not None))
        return "250 OK"


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1: records messages; `user`/`password` require AUTH; `tls` = None, 'starttls' or
    'implicit' with the certificate and key given."""

    def __init__(self, *, user: str | None = None, password: str | None = None, tls: str | None = None,
                 cert: tuple[Path, Path] | None = None) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs.update(authenticator=self._authenticate(user, password or ""), auth_required=True,
                          auth_require_tls=tls == "starttls")  # aiosmtpd counts only STARTTLS as TLS
        if tls is not None:
            assert cert is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*cert)
            kwargs["ssl_context" if tls == "implicit" else "tls_context"] = context
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, user: str, password: str) -> Any:
        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            if ok:
                self.logins.append(user)
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
        return authenticator

    @property
    def mails(self) -> list[Mail]:
        return self.handler.mails

    def url(self, scheme: str = "smtp", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
