"""Alerts against real receivers on loopback: Slack and webhook posts and Sentry envelopes to an HTTP server,
e-mail to aiosmtpd. No database: the Report and Delta values are built here."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sentry_sdk

from mita_integrity.alerts import AlertConfig, Delivery, deliver, load_config
from mita_integrity.database.errors import UsageError
from mita_integrity.findings import DatabaseInfo, Report, Result, Severity, Status
from mita_integrity.runs.findings_history import Delta, Finding, fingerprint

from .receivers import HttpReceiver, SmtpReceiver, free_port, self_signed

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

DB_PASSWORD = "Db-Pa55w0rd!x"
SMTP_PASSWORD = "smtp-S3cret-pw"
DATABASE = f"postgresql://mita:{DB_PASSWORD}@db.internal:5432/mita_demo"
MASKED_DATABASE = "postgresql://mita:***@db.internal:5432/mita_demo"
USER_EMAIL = "alice.smith@example.com"
STARTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)

SEVERITY = {"REF001": Severity.CRITICAL, "REF003": Severity.CRITICAL, "DUP001": Severity.CRITICAL,
            "DUP002": Severity.HIGH, "GOL001": Severity.HIGH, "TIM001": Severity.MEDIUM}
TABLE = {"REF001": "transactions", "REF003": "daily_plan", "DUP001": "users", "DUP002": "daily_plan",
         "GOL001": "goals", "TIM001": "transactions"}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def finding(code: str, count: int, previous: int | None = None, message: str = "") -> Finding:
    return Finding(fingerprint(code, TABLE[code]), code, TABLE[code], SEVERITY[code], count, previous,
                   message or f"{code} violations", STARTED)


def report(counts: dict[str, int]) -> Report:
    """A report whose rules in SEVERITY fail with counts[code] rows (or pass when absent or 0)."""
    results = tuple(
        Result(code, f"rule {code}", 4, severity, Status.FAIL if counts.get(code) else Status.PASS, TABLE[code],
               count=counts.get(code, 0), message=f"{code} violations", sample=("11", "12"),
               unit="key" if code == "DUP002" else "row")
        for code, severity in SEVERITY.items())
    return Report("run-2", STARTED, STARTED, DatabaseInfo(MASKED_DATABASE, "mita_demo", "16.4", "mita", "0026"),
                  (), results, tool_version="0.1.0")


def delta(new: tuple[Finding, ...] = (), worsened: tuple[Finding, ...] = (),
          resolved: tuple[Finding, ...] = ()) -> Delta:
    return Delta("run-2", new, worsened, resolved, failing=(*new, *worsened))


def config(http: HttpReceiver | None = None, smtp: SmtpReceiver | None = None, **extra: str) -> AlertConfig:
    env = {}
    if http is not None:
        env |= {"MITA_SLACK_WEBHOOK_URL": http.url("/services/T000/B000/slacktoken"),
                "SENTRY_DSN": http.dsn(), "MITA_ALERT_WEBHOOK_URL": http.url("/hook"),
                "MITA_REPORT_URL": "https://reports.example.com/runs/{run_id}.html"}
    if smtp is not None:
        env |= {"MITA_SMTP_URL": smtp.url(userinfo=f"alerts:{SMTP_PASSWORD}"),
                "MITA_ALERT_EMAIL_TO": "oncall@example.com, data-team@example.com",
                "MITA_ALERT_EMAIL_FROM": "mita-integrity@example.com"}
    return load_config(env | extra, None)


@pytest.fixture
def http() -> object:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> object:
    with SmtpReceiver(user="alerts", password=SMTP_PASSWORD) as receiver:
        yield receiver


def channels(deliveries: list[Delivery]) -> dict[str, Delivery]:
    return {d.channel: d for d in deliveries}


# ---------------------------------------------------------------- content of each channel

def test_slack_message_has_header_database_counts_findings_and_report_link(http: HttpReceiver) -> None:
    d = delta(new=(finding("REF001", 12), finding("DUP002", 3)), worsened=(finding("DUP001", 9, 4),),
              resolved=(finding("REF003", 0, 4),))
    out = deliver(config(http), d, report({"REF001": 12, "DUP002": 3, "DUP001": 9, "TIM001": 5}),
                  database=DATABASE, sleep=FakeSleep())
    assert channels(out)["slack"] == Delivery("slack", True, 1)
    [post] = http.at("/services/T000/B000/slacktoken")
    assert post.headers["Content-Type"].startswith("application/json")
    body = post.json()
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    header = blocks[0]["text"]["text"]
    assert "1 new critical finding, 1 new high finding, 1 critical finding worsened, 1 critical finding resolved " \
           "on mita_demo" in header
    assert body["text"].startswith("[mita-integrity] 1 new critical finding")
    text = json.dumps(blocks)
    for code in ("REF001", "DUP002", "DUP001", "REF003"):
        assert code in text
    assert MASKED_DATABASE in text
    assert "12 rows" in text and "9 rows (was 4)" in text and "3 keys" in text
    assert "resolved (was 4 rows)" in text
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert any(s.startswith("*New*") for s in sections)
    assert any(s.startswith("*Worse than the last run*") for s in sections)
    assert any(s.startswith("*Resolved*") and "REF003" in s for s in sections)
    counts = next(s for s in sections if s.startswith("*Failing findings in this run*"))
    assert "critical *2*" in counts and "high *1*" in counts and "medium *0*" in counts
    [button] = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert button["url"] == "https://reports.example.com/runs/run-2.html"


def test_email_is_multipart_text_and_html_with_subject_to_and_from(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    d = delta(new=(finding("REF001", 12), finding("DUP001", 2)))
    out = deliver(config(smtp=smtp), d, report({"REF001": 12, "DUP001": 2}), database=DATABASE, sleep=FakeSleep())
    assert out == [Delivery("email", True, 1)]
    [mail] = smtp.mails
    assert smtp.logins == ["alerts"] and mail.login == "alerts"
    assert mail.mail_from == "mita-integrity@example.com"
    assert mail.rcpt_tos == ["oncall@example.com", "data-team@example.com"]
    message = mail.message
    assert message["Subject"] == "[mita-integrity] 2 new critical findings on mita_demo"
    assert message["To"] == "oncall@example.com, data-team@example.com"
    assert message["From"] == "mita-integrity@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain, markup = text.get_content(), html.get_content()
    for part in (plain, markup):
        assert "REF001" in part and "DUP001" in part and "transactions" in part and MASKED_DATABASE in part
        assert "https://reports.example.com/runs/run-2.html" not in part  # no report_url configured here
    assert "[critical] REF001 on transactions: 12 rows" in plain
    assert "<code>REF001</code>" in markup


def test_sentry_gets_one_event_per_new_or_worsened_critical_finding(http: HttpReceiver) -> None:
    d = delta(new=(finding("REF001", 12), finding("DUP002", 3)), worsened=(finding("DUP001", 9, 4),),
              resolved=(finding("REF003", 0, 4),))
    out = deliver(config(http), d, report({"REF001": 12, "DUP002": 3, "DUP001": 9}), database=DATABASE,
                  sleep=FakeSleep())
    assert channels(out)["sentry"] == Delivery("sentry", True, 2)
    posts = http.at("/api/1/envelope/")
    assert len(posts) == 2 and all(p.headers["Content-Encoding"] == "gzip" for p in posts)
    assert all("sentry_key=publickey" in p.headers["X-Sentry-Auth"] for p in posts)
    events = {e["tags"]["code"]: e for e in http.sentry_events()}
    assert set(events) == {"REF001", "DUP001"}  # high (DUP002) is not routed to Sentry; resolved never is
    ref = events["REF001"]
    assert ref["level"] == "fatal"
    assert ref["fingerprint"] == ["mita-integrity", "REF001", "transactions"]
    assert ref["tags"] == {"code": "REF001", "table": "transactions", "database": MASKED_DATABASE,
                           "severity": "critical", "change": "new"}
    assert ref["message"].startswith("REF001 on transactions: 12 rows")
    assert events["DUP001"]["tags"]["change"] == "worsened"
    assert events["DUP001"]["extra"]["previous"] == 4
    assert ref["release"].startswith("mita-integrity@")
    assert not sentry_sdk.get_client().is_active()  # nothing global was initialised
    # only the event's own fields and the SDK's identification: no stack, no frame's local variables (which
    # sentry-sdk 3.0 attaches by default, and which hold the findings' messages)
    from mita_integrity.alerts.sentry import KEPT

    assert all(set(e) <= KEPT for e in events.values()), [sorted(set(e) - KEPT) for e in events.values()]


def test_sentry_is_reached_through_the_sdks_public_api_only() -> None:
    """Only what the sentry_sdk package exports (its `__all__`: Client, Transport …) is used at run time; its
    modules (transport, utils, consts) are internals a minor release may change. Type-only imports aside."""
    import ast
    import inspect

    from mita_integrity.alerts import sentry

    tree = ast.parse(inspect.getsource(sentry))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                 for stmt in node.body for n in ast.walk(stmt)}
    used: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sentry_sdk"):
            used |= {f"{node.module}:{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            used |= {f"{a.name}:" for a in node.names if a.name.startswith("sentry_sdk.")}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sentry_sdk":
            used.add(f"sentry_sdk:{node.attr}")
    public = {f"sentry_sdk:{name}" for name in sentry_sdk.__all__}
    assert used and used <= public, sorted(used - public)


def test_sentry_levels_by_severity_when_high_is_routed_there(http: HttpReceiver, tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(f'[alerts]\nsentry_dsn = "{http.dsn()}"\n[alerts.routing]\nhigh = ["sentry"]\n')
    out = deliver(load_config({}, path), delta(new=(finding("GOL001", 3),)), report({"GOL001": 3}),
                  database="mita_demo", sleep=FakeSleep())
    assert out == [Delivery("sentry", True, 1)]
    [event] = http.sentry_events()
    assert event["level"] == "error" and event["fingerprint"] == ["mita-integrity", "GOL001", "goals"]


def test_webhook_receives_the_json_report_and_the_delta(http: HttpReceiver) -> None:
    d = delta(new=(finding("REF001", 12),), resolved=(finding("REF003", 0, 4),))
    out = deliver(config(http), d, report({"REF001": 12}), database=DATABASE, sleep=FakeSleep())
    assert channels(out)["webhook"] == Delivery("webhook", True, 1)
    [post] = http.at("/hook")
    assert post.headers["Content-Type"].startswith("application/json")
    body = post.json()
    assert body["report"]["schema_version"] == 1 and body["report"]["run_id"] == "run-2"
    assert {r["code"] for r in body["report"]["results"] if r["status"] == "fail"} == {"REF001"}
    assert body["report"]["database"]["url"] == MASKED_DATABASE
    assert [f["code"] for f in body["delta"]["new"]] == ["REF001"]
    assert [f["code"] for f in body["delta"]["resolved"]] == ["REF003"]
    assert body["title"] == "1 new critical finding, 1 critical finding resolved on mita_demo"


# ---------------------------------------------------------------- routing and de-duplication

def test_a_new_medium_finding_sends_nothing_immediately(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    out = deliver(config(http, smtp), delta(new=(finding("TIM001", 5),)), report({"TIM001": 5}),
                  database=DATABASE, sleep=FakeSleep())
    assert out == [] and http.posts == [] and smtp.mails == []


def test_a_new_high_finding_goes_to_slack_and_email_only(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    out = deliver(config(http, smtp), delta(new=(finding("DUP002", 3),)), report({"DUP002": 3}),
                  database=DATABASE, sleep=FakeSleep())
    assert [d.channel for d in out] == ["slack", "email"] and all(d.ok for d in out)
    assert [p.path for p in http.posts] == ["/services/T000/B000/slacktoken"]
    assert len(smtp.mails) == 1


def test_a_new_critical_finding_goes_to_all_four(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    out = deliver(config(http, smtp), delta(new=(finding("REF001", 12),)), report({"REF001": 12}),
                  database=DATABASE, sleep=FakeSleep())
    assert [(d.channel, d.ok, d.sent) for d in out] == [("slack", True, 1), ("email", True, 1),
                                                        ("sentry", True, 1), ("webhook", True, 1)]
    assert sorted(p.path for p in http.posts) == ["/api/1/envelope/", "/hook", "/services/T000/B000/slacktoken"]
    assert len(smtp.mails) == 1


def test_an_empty_delta_sends_nothing_at_all(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    unchanged = Delta("run-3", failing=(finding("REF001", 12, 12),))  # still failing, not worse
    for d in (Delta("run-3"), unchanged):
        assert deliver(config(http, smtp), d, report({"REF001": 12}), database=DATABASE, sleep=FakeSleep()) == []
    assert http.posts == [] and smtp.mails == []


def test_a_disappeared_critical_finding_sends_resolved(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    out = deliver(config(http, smtp), delta(resolved=(finding("REF001", 0, 12),)), report({}),
                  database=DATABASE, sleep=FakeSleep())
    assert [d.channel for d in out] == ["slack", "email", "webhook"]  # Sentry resolves issues itself
    [slack] = http.at("/services/T000/B000/slacktoken")
    blocks = slack.json()["blocks"]
    assert blocks[0]["text"]["text"] == ":white_check_mark: 1 critical finding resolved on mita_demo"
    assert any(b.get("text", {}).get("text", "").startswith("*Resolved*") for b in blocks)
    assert smtp.mails[0].message["Subject"] == "[mita-integrity] 1 critical finding resolved on mita_demo"
    assert http.sentry_events() == []


def test_a_resolved_medium_finding_is_silent(http: HttpReceiver) -> None:
    assert deliver(config(http), delta(resolved=(finding("TIM001", 0, 5),)), report({}), database=DATABASE,
                   sleep=FakeSleep()) == []


# ---------------------------------------------------------------- failures and retries

def test_a_dead_receiver_fails_only_its_channel_after_the_retries(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/services/T000/B000/slacktoken"
    sleep = FakeSleep()
    out = channels(deliver(config(http, smtp, MITA_SLACK_WEBHOOK_URL=dead), delta(new=(finding("REF001", 12),)),
                           report({"REF001": 12}), database=DATABASE, sleep=sleep))
    assert not out["slack"].ok and out["slack"].sent == 0
    error = out["slack"].error or ""
    assert "unreachable" in error and "4 attempts" in error and "\n" not in error
    assert "slacktoken" not in error  # the hook's path is its secret
    assert sleep.calls == [0.5, 1.0, 2.0]
    assert all(out[c].ok for c in ("email", "sentry", "webhook"))
    assert len(smtp.mails) == 1 and http.at("/hook")


def test_a_dead_smtp_server_fails_only_email(http: HttpReceiver) -> None:
    env = {"MITA_SMTP_URL": f"smtp://127.0.0.1:{free_port()}", "MITA_ALERT_EMAIL_TO": "oncall@example.com",
           "MITA_ALERT_EMAIL_FROM": "mita@example.com"}
    out = channels(deliver(config(http, **env), delta(new=(finding("REF001", 1),)), report({"REF001": 1}),
                           database=DATABASE, sleep=FakeSleep()))
    assert not out["email"].ok and "unreachable" in (out["email"].error or "")
    assert out["slack"].ok and out["sentry"].ok and out["webhook"].ok


def test_a_transient_error_is_retried_until_delivered(http: HttpReceiver) -> None:
    http.fail("/hook", 503, times=2)
    sleep = FakeSleep()
    out = channels(deliver(config(http), delta(new=(finding("REF001", 12),)), report({"REF001": 12}),
                           database=DATABASE, sleep=sleep))
    assert out["webhook"] == Delivery("webhook", True, 1)
    assert len(http.at("/hook")) == 3 and sleep.calls == [0.5, 1.0]


def test_a_permanent_http_error_is_not_retried(http: HttpReceiver) -> None:
    http.fail("/services/T000/B000/slacktoken", 404, times=5)
    sleep = FakeSleep()
    out = channels(deliver(config(http), delta(new=(finding("REF001", 12),)), report({"REF001": 12}),
                           database=DATABASE, sleep=sleep))
    assert not out["slack"].ok and (out["slack"].error or "").startswith("HTTP 404")
    assert len(http.at("/services/T000/B000/slacktoken")) == 1 and sleep.calls == []
    assert out["webhook"].ok


def test_a_refused_smtp_login_fails_at_once_without_showing_the_password(http: HttpReceiver,
                                                                         smtp: SmtpReceiver) -> None:
    sleep = FakeSleep()
    env = {"MITA_SMTP_URL": smtp.url(userinfo="alerts:wrong-Passw0rd")}
    out = channels(deliver(config(http, smtp, **env), delta(new=(finding("REF001", 12),)), report({"REF001": 12}),
                           database=DATABASE, sleep=sleep))
    error = out["email"].error or ""
    assert not out["email"].ok and "refused the login" in error and "wrong-Passw0rd" not in error
    assert sleep.calls == [] and smtp.mails == []
    assert out["slack"].ok


def test_sentry_that_keeps_failing_reports_what_got_through(http: HttpReceiver) -> None:
    http.fail("/api/1/envelope/", 500, times=4)
    out = channels(deliver(config(http), delta(new=(finding("REF001", 12), finding("DUP001", 2))),
                           report({"REF001": 12, "DUP001": 2}), database=DATABASE, sleep=FakeSleep()))
    assert not out["sentry"].ok and out["sentry"].sent == 0 and "HTTP 500" in (out["sentry"].error or "")
    assert len(http.at("/api/1/envelope/")) == 4  # the first event's attempts; the rest are not tried


# ---------------------------------------------------------------- secrets and personal data

def test_no_password_or_user_address_reaches_any_receiver(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    d = delta(new=(finding("DUP001", 2, message=f"duplicate of {USER_EMAIL}"), finding("REF001", 12)))
    out = deliver(config(http, smtp), d, report({"DUP001": 2, "REF001": 12}), database=DATABASE, sleep=FakeSleep())
    assert all(x.ok for x in out) and len(out) == 4
    received = http.everything() + "\n".join(m.raw.decode("utf-8", "replace") for m in smtp.mails)
    for secret in (DB_PASSWORD, SMTP_PASSWORD, USER_EMAIL):
        assert secret not in received
    assert "a***@example.com" in received and MASKED_DATABASE in received


def test_tls_smtp_starttls_and_implicit(tmp_path: Path, http: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make a certificate")
    cert = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # the client trusts the test certificate
    for mode, scheme in (("starttls", "smtp"), ("implicit", "smtps")):
        with SmtpReceiver(user="alerts", password=SMTP_PASSWORD, tls=mode, cert=cert) as server:
            env = {"MITA_SMTP_URL": server.url(scheme, f"alerts:{SMTP_PASSWORD}"),
                   "MITA_ALERT_EMAIL_TO": "oncall@example.com", "MITA_ALERT_EMAIL_FROM": "mita@example.com"}
            out = deliver(load_config(env), delta(new=(finding("REF001", 1),)), report({"REF001": 1}),
                          database=DATABASE, sleep=FakeSleep())
            assert out == [Delivery("email", True, 1)], mode
            assert server.mails[0].tls and server.logins == ["alerts"], mode


def test_plain_smtp_without_auth() -> None:
    with SmtpReceiver() as server:
        env = {"MITA_SMTP_URL": server.url(), "MITA_ALERT_EMAIL_TO": "oncall@example.com",
               "MITA_ALERT_EMAIL_FROM": "MITA alerts <mita@example.com>"}
        out = deliver(load_config(env), delta(new=(finding("GOL001", 2),)), report({"GOL001": 2}),
                      database="mita_demo", sleep=FakeSleep())
        assert out == [Delivery("email", True, 1)]
        [mail] = server.mails
        assert mail.login is None and not mail.tls and mail.mail_from == "mita@example.com"
        assert mail.message["Subject"] == "[mita-integrity] 1 new high finding on mita_demo"


def test_a_long_slack_message_keeps_within_slack_limits(http: HttpReceiver) -> None:
    many = tuple(Finding(f"REF010:t{i}", "REF010", f"table_{i:02d}", Severity.CRITICAL, i + 1,
                         message="x" * 180) for i in range(45))
    out = deliver(config(http), Delta("run-2", new=many, failing=many), report({}), database=DATABASE,
                  sleep=FakeSleep())
    assert channels(out)["slack"].ok
    [post] = http.at("/services/T000/B000/slacktoken")
    blocks = post.json()["blocks"]
    assert len(blocks) <= 50 and len(blocks[0]["text"]["text"]) <= 150
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert all(len(t) <= 3000 for t in texts)
    joined = "\n".join(texts)
    assert "table_19" in joined and "table_20" not in joined and "… and 25 more in the report" in joined
    assert "45 new critical findings on mita_demo" in blocks[0]["text"]["text"]


def test_delivery_to_json() -> None:
    assert Delivery("slack", False, 0, "boom").to_json() == {"channel": "slack", "ok": False, "sent": 0,
                                                             "error": "boom"}


# ---------------------------------------------------------------- configuration

def usage_error(env: dict[str, str], path: Path | None = None) -> str:
    with pytest.raises(UsageError) as caught:
        load_config(env, path)
    line = caught.value.one_line()
    assert "\n" not in line
    for secret in (SMTP_PASSWORD, DB_PASSWORD, "slacktoken"):
        assert secret not in line
    return line


def test_config_from_environment_lists_channels() -> None:
    cfg = load_config({"MITA_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
                       "MITA_SMTP_URL": f"smtps://alerts:{SMTP_PASSWORD}@smtp.example.com",
                       "MITA_ALERT_EMAIL_TO": "a@example.com,b@example.com,", "MITA_ALERT_EMAIL_FROM": "m@example.com",
                       "MITA_ALERT_WEBHOOK_URL": "", "PATH": "/usr/bin"})
    assert cfg.channels == ("slack", "email")
    assert cfg.email_to == ("a@example.com", "b@example.com")
    assert cfg.smtp is not None and cfg.smtp.port == 465 and cfg.smtp.implicit_tls
    assert cfg.channels_for(Severity.HIGH) == ("slack", "email") and cfg.channels_for(Severity.MEDIUM) == ()
    described = "\n".join(cfg.describe()) + repr(cfg)
    assert SMTP_PASSWORD not in described and "/services/T/B/x" not in described
    assert load_config({}).channels == ()


def test_config_file_with_environment_winning(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text('[alerts]\nwebhook_url = "https://file.example.com/hook"\nsentry_dsn = "https://k@o1.ingest.sentry.io/5"\n'
                    'email_to = ["a@example.com"]\nsmtp_url = "smtp://mail.example.com:587"\n'
                    'email_from = "MITA <mita@example.com>"\n[alerts.routing]\nmedium = "slack, email"\n'
                    '[schedule]\ncron = "0 2 * * *"\n')
    cfg = load_config({"MITA_ALERT_WEBHOOK_URL": "https://env.example.com/hook"}, path)
    assert cfg.webhook_url == "https://env.example.com/hook"
    assert cfg.channels == ("email", "sentry", "webhook")
    assert cfg.email_from == "MITA <mita@example.com>"
    assert cfg.channels_for(Severity.MEDIUM) == ("email",)  # slack is not configured
    assert cfg.channels_for(Severity.CRITICAL) == ("email", "sentry", "webhook")


def test_unknown_key_in_the_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text('[alerts]\nslack_webhook = "https://hooks.slack.com/services/T/B/slacktoken"\n')
    line = usage_error({}, path)
    assert "unknown key 'slack_webhook'" in line and "did you mean slack_webhook_url" in line
    path.write_text('[alerts]\nSENTRY_DSN = "https://k@o1.ingest.sentry.io/5"\n')
    assert "did you mean sentry_dsn" in usage_error({}, path)


@pytest.mark.parametrize(("env", "expected"), [
    ({"MITA_SLACK_WEBHOOK_URL": "ftp://hooks.slack.com/services/slacktoken"}, "MITA_SLACK_WEBHOOK_URL must be an http"),
    ({"MITA_ALERT_WEBHOOK_URL": "https:///slacktoken"}, "MITA_ALERT_WEBHOOK_URL is not a valid URL"),
    ({"MITA_SMTP_URL": f"smtp://alerts:{SMTP_PASSWORD}@mail.example.com:99999", "MITA_ALERT_EMAIL_TO": "a@example.com",
      "MITA_ALERT_EMAIL_FROM": "m@example.com"}, "MITA_SMTP_URL is malformed"),
    ({"MITA_SMTP_URL": f"http://alerts:{SMTP_PASSWORD}@mail.example.com", "MITA_ALERT_EMAIL_TO": "a@example.com",
      "MITA_ALERT_EMAIL_FROM": "m@example.com"}, "MITA_SMTP_URL must start with smtp:// or smtps://"),
    ({"SENTRY_DSN": "https://sentry.example.com/abc"}, "SENTRY_DSN is not a Sentry DSN"),
    ({"MITA_ALERT_EMAIL_TO": "oncall@example.com"}, "MITA_ALERT_EMAIL_TO names recipients but neither MITA_SMTP_URL"),
    ({"MITA_SMTP_URL": f"smtp://alerts:{SMTP_PASSWORD}@mail.example.com"}, "MITA_SMTP_URL is set but neither"),
    ({"MITA_SMTP_URL": "smtp://mail.example.com", "MITA_ALERT_EMAIL_TO": "a@example.com"}, "no sender"),
    ({"MITA_SMTP_URL": "smtp://mail.example.com", "MITA_ALERT_EMAIL_TO": "a@example.com, not an address",
      "MITA_ALERT_EMAIL_FROM": "m@example.com"}, "'not an address' is not an e-mail address"),
    ({"MITA_REPORT_URL": "https://user:pw-secret@reports.example.com/"}, "MITA_REPORT_URL contains a password"),
])
def test_bad_configuration_is_one_clear_line(env: dict[str, str], expected: str) -> None:
    assert expected in usage_error(env)


def test_bad_routing_and_misplaced_keys_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text('[alerts.routing]\nhigh = ["slack", "pager"]\n')
    assert "unknown channel 'pager'" in usage_error({}, path)
    path.write_text('[alerts.routing]\nurgent = ["slack"]\n')
    assert "unknown severity 'urgent'" in usage_error({}, path)
    path.write_text('slack_webhook_url = "https://hooks.slack.com/services/T/B/slacktoken"\n')
    assert "outside the [alerts] table" in usage_error({}, path)
    path.write_text('[alerts\nslack_webhook_url = 1\n')
    assert "not valid TOML" in usage_error({}, path)
    assert "does not exist" in usage_error({}, tmp_path / "missing.toml")


# ---------------------------------------------------------------- deadlines and the budget

def test_a_trickling_receiver_is_cut_at_each_attempts_deadline(http: HttpReceiver) -> None:
    """An answer of ~80 bytes at one byte every 0.4 s would hold an attempt 30 s (a socket timeout bounds
    one read only); each attempt ends at its 1 s deadline, the retries within the budget, and the other
    channels, sent at the same time, are not held up."""
    import time

    from mita_integrity.alerts.webhook import Budget

    http.trickle("/services/T000/B000/slacktoken", 0.4)
    began = time.monotonic()
    out = channels(deliver(config(http), delta(new=(finding("REF001", 12),)), report({"REF001": 12}),
                           database=DATABASE, sleep=FakeSleep(), budget=Budget(total_s=8, attempt_s=1)))
    took = time.monotonic() - began
    error = out["slack"].error or ""
    assert not out["slack"].ok and "no complete answer within the attempt's deadline of 1 s" in error
    assert "gave up after 4 attempts" in error and 3.5 < took < 7, took
    assert out["webhook"].ok and out["sentry"].ok


def test_the_runs_budget_bounds_every_attempt_and_retry(http: HttpReceiver) -> None:
    import time

    from mita_integrity.alerts.webhook import Budget

    http.trickle("/hook", 0.4)
    began = time.monotonic()
    out = channels(deliver(config(http), delta(new=(finding("REF001", 12),)), report({"REF001": 12}),
                           database=DATABASE, sleep=FakeSleep(), budget=Budget(total_s=2, attempt_s=30)))
    took = time.monotonic() - began
    assert not out["webhook"].ok and "delivery budget of 2 s is spent" in (out["webhook"].error or ""), out
    assert took < 4, took
    assert out["slack"].ok


def test_a_trickling_smtp_server_is_cut_at_the_deadline() -> None:
    """An SMTP server that sends its greeting one byte every 0.3 s."""
    import socket
    import threading
    import time

    from mita_integrity.alerts.webhook import Budget

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def trickle() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                for byte in b"220 slow.example.com ESMTP a very slow server indeed\r\n":
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.3)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        env = {"MITA_SMTP_URL": f"smtp://127.0.0.1:{server.getsockname()[1]}", "MITA_ALERT_EMAIL_TO": "a@example.com",
               "MITA_ALERT_EMAIL_FROM": "m@example.com"}
        began = time.monotonic()
        [out] = deliver(load_config(env), delta(new=(finding("REF001", 1),)), report({"REF001": 1}),
                        database=DATABASE, sleep=FakeSleep(), budget=Budget(total_s=3, attempt_s=1))
        took = time.monotonic() - began
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert not out.ok and "deadline of 1 s" in (out.error or "") and took < 5, (out, took)


@pytest.mark.parametrize(("value", "expected"), [("abc", "must be a number of seconds"), ("0", "above 0"),
                                                 ("-5", "above 0")])
def test_bad_deadline_settings_are_one_clear_line(value: str, expected: str) -> None:
    assert expected in usage_error({"MITA_ALERT_ATTEMPT_TIMEOUT_SECONDS": value})
    assert expected in usage_error({"MITA_ALERT_DELIVERY_BUDGET_SECONDS": value})


def test_deadline_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text("[alerts]\nattempt_timeout_seconds = 5\ndelivery_budget_seconds = 45.5\n")
    cfg = load_config({"MITA_ALERT_ATTEMPT_TIMEOUT_SECONDS": "7"}, path)
    assert (cfg.attempt_timeout_s, cfg.delivery_budget_s) == (7.0, 45.5)
    assert (load_config({}).attempt_timeout_s, load_config({}).delivery_budget_s) == (20.0, 120.0)
