"""The alert outbox under least privilege: the writer of docs/roles.sql runs the scheduler with alerts (it
keeps `integrity.alert_outbox`); the reader may read it but not change it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mita_integrity.database.connection import Database, connect

from .conftest import PgServer
from .receivers import HttpReceiver
from .test_roles import Roles, cli, drop_roles, make_roles

ORPHAN_PLAN = ("INSERT INTO daily_plan (id, user_id, date, category) VALUES ('00000000-0000-0000-0000-0000000000b1', "
               "'00000000-0000-0000-0000-0000000000ff', date_trunc('day', now(), 'UTC'), 'food')")


@pytest.fixture
def roles(pg: PgServer, baseline_db: Database) -> Iterator[Roles]:
    made = make_roles(pg, baseline_db)
    yield made
    drop_roles(baseline_db, made)


def test_the_writer_keeps_the_outbox_and_a_failed_channel_is_told_next_run(
        capsys: pytest.CaptureFixture[str], baseline_db: Database, roles: Roles,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "MITA_SMTP_URL", "SENTRY_DSN",
                 "MITA_ALERT_WEBHOOK_URL", "MITA_ALERT_EMAIL_TO"):
        monkeypatch.delenv(name, raising=False)
    with connect(baseline_db) as conn:
        conn.execute(ORPHAN_PLAN.encode())
        conn.commit()
    with HttpReceiver() as http:
        monkeypatch.setenv("MITA_SLACK_WEBHOOK_URL", http.url("/slack"))
        http.fail("/slack", 500, times=4)
        args = ("schedule", "--once", "--select", "REF003", "--fail-on", "never")
        code, out, err = cli(capsys, roles.writer_url, *args)
        assert code == 0 and "slack FAILED (HTTP 500" in out, err
        code, out, err = cli(capsys, roles.writer_url, *args)
        assert code == 0 and "alerts: slack ok" in out, err
        code, out, err = cli(capsys, roles.writer_url, *args)
        assert code == 0 and "alerts: no alert due" in out, err
        assert len(http.accepted("/slack")) == 1
    code, out, err = cli(capsys, roles.reader_url, "runs", "--kind", "check")
    assert code == 0 and len(out.splitlines()) == 5, out  # the reader reads the history, a failed channel too
