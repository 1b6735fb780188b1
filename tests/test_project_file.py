"""The project file: the team's settings and its own rules, first-class in every output, validated up front."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database.connection import Database
from mita_integrity.database.urls import build_url
from mita_integrity.findings import Report

from .conftest import PgServer
from .dbstate import checksums, cli_url, run_sql
from .receivers import HttpReceiver
from .test_sql_script import _psql

U1, U2 = "10000000-0000-0000-0000-000000000001", "10000000-0000-0000-0000-000000000002"
SEED = f"""
INSERT INTO users (id, email, password_hash) VALUES ('{U1}', 'a@x.org', 'h'), ('{U2}', 'b@x.org', 'h');
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at) VALUES
  ('20000000-0000-0000-0000-000000000001', '{U1}', 'car', 60000, 'USD', now(), now()),
  ('20000000-0000-0000-0000-000000000002', '{U1}', 'car', 75000, 'USD', now(), now()),
  ('20000000-0000-0000-0000-000000000003', '{U2}', 'house', 2000000, 'USD', now(), now()),
  ('20000000-0000-0000-0000-000000000004', '{U2}', 'house', 2000000, 'EUR', now(), now()),
  ('20000000-0000-0000-0000-000000000005', '{U2}', 'food', 100, 'USD', now(), now()),
  ('20000000-0000-0000-0000-000000000006', '{U2}', 'food', 60000, 'EUR', now(), now());
INSERT INTO goals (id, user_id, title, target_amount) VALUES
  ('30000000-0000-0000-0000-000000000001', '{U1}', '', 100),
  ('30000000-0000-0000-0000-000000000002', '{U1}', '   ', 100),
  ('30000000-0000-0000-0000-000000000003', '{U2}', 'car', 100);
"""
# X001 (a predicate): transactions 1, 2 and 3; X002 (a query): goals 1 and 2; AMT004 (> 1,000,000): 3 and 4.
EXPECTED = {"X001": 3, "X002": 2}

PROJECT = """
[check]
budget_days = 30
day_boundary = "utc"

[rules.AMT004]
severity = "low"

[[custom_rules]]
code = "X001"
name = "large-usd-spend"
section = 9
severity = "high"
table = "transactions"
where = "t.amount > 50000 AND t.currency = 'USD'"   # t is the table's row
hint = "confirm with the user"

[[custom_rules]]
code = "X002"
name = "goal-without-title"
section = 8
severity = "medium"
query = "SELECT g.id FROM goals g WHERE g.title IS NULL OR btrim(g.title) = ''"
finds = "goals whose title is blank"
"""


@pytest.fixture
def seeded(baseline_db: Database) -> Database:
    run_sql(baseline_db, SEED)
    return baseline_db


def project(tmp_path: Path, text: str = PROJECT, name: str = "mita-integrity.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def psql_script_counts(pg: PgServer, db: Database, script: str, tmp_path: Path) -> dict[tuple[str, str], int]:
    """Gives {(code, table): count} as psql prints them running the given script."""
    path = tmp_path / "script.sql"
    path.write_text(script)
    url = build_url(db.parsed.params, mask_password=False)
    proc = subprocess.run([str(_psql(pg)), url, "-X", "-A", "-t", "-F", "|", "-f", str(path)],
                          capture_output=True, text=True, check=True)
    assert "ERROR" not in proc.stderr, proc.stderr
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and re.fullmatch(r"[A-Z]{1,4}\d{3}", parts[0]) and parts[2].isdigit():
            counts[(parts[0], parts[1])] = int(parts[2])
    return counts


# ------------------------------------------------------------------------------------------------ done when

def test_custom_rules_give_their_exact_counts_in_every_format_and_in_the_psql_script(
        pg: PgServer, seeded: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project(tmp_path)
    out = tmp_path / "reports"
    out.mkdir()
    args = ["--db", cli_url(seeded), "--config", str(config), "check", "--fail-on", "never"]
    assert main([*args, "--format", "json", "--format", "html", "--format", "junit", "--format", "prometheus",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out  # the text report goes to the terminal when the others go to files
    files = {p.suffix: p.read_text() for p in out.iterdir()}

    # text
    assert re.search(r"HIGH\s+X001\s+transactions\s+3 rows — large-usd-spend", text), text
    assert re.search(r"MEDIUM\s+X002\s+\(query\)\s+2 rows — goals whose title is blank", text), text
    assert "confirm with the user" in text
    # JSON
    results = {r["code"]: r for r in json.loads(files[".json"])["results"]}
    assert {c: (results[c]["count"], results[c]["status"]) for c in EXPECTED} == {
        "X001": (3, "fail"), "X002": (2, "fail")}
    assert results["X001"]["severity"] == "high" and results["X001"]["section"] == 9
    assert results["X001"]["table"] == "transactions" and len(results["X001"]["sample"]) == 3
    assert sorted(results["X002"]["sample"]) == ["30000000-0000-0000-0000-000000000001",
                                                 "30000000-0000-0000-0000-000000000002"]
    assert (results["AMT004"]["severity"], results["AMT004"]["count"]) == ("low", 2)  # the override
    # HTML
    html = files[".html"]
    for code, count in EXPECTED.items():
        assert re.search(rf'<span class="code">{code}</span>.*?<td class="num count" data-sort="{count}">'
                         rf'{count} rows</td>', html, re.DOTALL), code
    # JUnit
    cases = {c.get("name"): c for c in ET.fromstring(files[".xml"]).iter("testcase")}
    assert "count: 3 rows" in (cases["X001 transactions"].findtext("failure") or "")
    assert "count: 2 rows" in (cases["X002 (query)"].findtext("failure") or "")
    assert cases["X001 transactions"].find("failure").get("type") == "high"  # type: ignore[union-attr]
    # Prometheus
    prom = files[".prom"]
    assert 'mita_integrity_violations{code="X001",severity="high",table="transactions"} 3' in prom
    assert 'mita_integrity_violations{code="X002",severity="medium",table="(query)"} 2' in prom
    assert 'mita_integrity_violations{code="AMT004",severity="low",table="transactions"} 2' in prom
    # the psql script
    assert main(["--config", str(config), "sql"]) == 0
    script = capsys.readouterr().out
    counts = psql_script_counts(pg, seeded, script, tmp_path)
    assert counts[("X001", "transactions")] == 3 and counts[("X002", "(query)")] == 2
    assert counts[("AMT004", "transactions")] == 2


def test_the_contract_example_file_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The format in the issue is a contract: the file exactly as shown there loads."""
    from mita_integrity.cli.project_file import load

    example = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    contract = re.search(r"<!-- contract -->\n```toml\n(.*?)```", example, re.DOTALL)
    assert contract, "docs/configuration.md shows the contract's example file"
    monkeypatch.delenv("MITA_SLACK_WEBHOOK_URL", raising=False)
    loaded = load(project(tmp_path, contract.group(1)), env={})
    assert [r.code for r in loaded.custom] == ["X001", "X002"]
    assert loaded.value("select") == ("REF", "DUP001") and loaded.value("exclude_tables") == ("ai_advice_templates",)
    assert loaded.rules["AMT004"].fail_above == 10


# ------------------------------------------------------------------------------------------------ settings

def test_fail_above_passes_an_accepted_backlog_and_shows_its_count(seeded: Database, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = project(tmp_path, PROJECT.replace('severity = "low"', 'severity = "high"\nfail_above = 2'))
    args = ["--db", cli_url(seeded), "--config", str(config), "check", "--select", "AMT004"]
    assert main([*args, "--format", "json"]) == 0  # 2 rows, at the allowance: a pass, exit 0
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert (result["status"], result["count"], result["severity"]) == ("pass", 2, "high")
    assert "at or below fail_above = 2" in result["reason"]
    assert main(args) == 0
    assert re.search(r"PASS\s+AMT004\s+transactions.amount\s+accepted: 2 rows", capsys.readouterr().out)
    run_sql(seeded, "UPDATE transactions SET amount = 3000000 WHERE id = '20000000-0000-0000-0000-000000000005'")
    assert main([*args, "--format", "json"]) == 1  # 3 rows: above the allowance, it fails as high
    assert json.loads(capsys.readouterr().out)["results"][0]["status"] == "fail"


def test_exclude_tables_is_honoured_by_per_table_and_table_rules(baseline_db: Database, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_sql(baseline_db, f"INSERT INTO users (id, email, password_hash) VALUES ('{U1}', 'a@x.org', 'h');"
                         "INSERT INTO installments (id, user_id, item_name, total_amount, payment_amount, "
                         "total_payments, first_payment_date, next_payment_date, final_payment_date, deleted_at) "
                         f"VALUES (gen_random_uuid(), '{U1}', 'tv', 10, 1, 10, now(), now(), now(), now());"
                         "INSERT INTO moods (id, user_id, date, mood) VALUES (gen_random_uuid(), gen_random_uuid(), "
                         "now(), 'ok');"
                         "INSERT INTO habits (id, user_id, title) VALUES (gen_random_uuid(), gen_random_uuid(), 'x')")
    url = cli_url(baseline_db)

    def results(config: Path) -> dict[tuple[str, str], dict[str, object]]:
        main(["--db", url, "--config", str(config), "check", "--select", "REF010,SDL001,SCH001,REF005",
              "--format", "json", "--fail-on", "never"])
        return {(r["code"], r["table"]): r for r in json.loads(capsys.readouterr().out)["results"]}

    before = results(project(tmp_path, "", "all.toml"))
    assert before[("REF010", "moods")]["count"] == 1 and before[("SDL001", "installments")]["count"] == 1
    assert ("SCH001", "moods") in before and before[("REF005", "habits")]["count"] == 1
    gone = ("moods", "installments")
    after = results(project(tmp_path, '[check]\nexclude_tables = ["moods", "installments", "habits"]\n',
                            "some.toml"))
    assert not [key for key in after if key[1] in gone]
    assert after[("REF005", "habits")]["status"] == "skipped"
    assert "habits is in exclude_tables" in str(after[("REF005", "habits")]["reason"])
    # every other result on an excluded table is left out (SCH001 habits too); the rest are untouched
    assert set(before) - set(after) == {k for k in before if k[1] in gone or k == ("SCH001", "habits")}
    assert all((after[k]["status"], after[k]["count"]) == (before[k]["status"], before[k]["count"])
               for k in after if k[1] not in (*gone, "habits"))


def test_settings_layer_file_then_environment_then_flags(seeded: Database, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = project(tmp_path, PROJECT.replace("budget_days = 30", 'budget_days = 10\nselect = ["REF", "X"]\n'
                                                                   'ignore = ["REF005"]'))
    base = ["--db", cli_url(seeded), "--config", str(config)]

    asked: list[CheckRequest] = []

    def recording(db: Database, request: CheckRequest) -> Report:
        asked.append(request)
        return run_check(db, request)

    monkeypatch.setattr("mita_integrity.check.run.run_check", recording)

    def options(*extra: str) -> CheckRequest:
        assert main([*base, "check", "--format", "json", "--fail-on", "never", *extra]) == 0
        capsys.readouterr()
        return asked[-1]

    assert (options().budget_days, options().select, options().ignore) == (10, ("REF", "X"), ("REF005",))
    monkeypatch.setenv("MITA_INTEGRITY_BUDGET_DAYS", "20")
    monkeypatch.setenv("MITA_INTEGRITY_IGNORE", "REF001")
    assert (options().budget_days, options().select, options().ignore) == (20, ("REF", "X"), ("REF001",))
    flags = options("--budget-days", "40", "--select", "X001")
    assert (flags.budget_days, flags.select, flags.ignore) == (40, ("X001",), ())  # the flags replace both
    assert main([*base, "config", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["check"]["budget_days"] == {"value": 20, "source": "MITA_INTEGRITY_BUDGET_DAYS"}
    assert doc["check"]["day_boundary"]["source"] == "mita-integrity.toml [check] day_boundary"
    assert doc["check"]["exclude_tables"] == {"value": [], "source": "default"}
    assert doc["rules"]["AMT004"]["severity"] == "low" and doc["rules"]["AMT004"]["declared_severity"] == "medium"
    assert [r["code"] for r in doc["custom_rules"]] == ["X001", "X002"]
    assert main([*base, "config"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"check.budget_days\s+20\s+\(MITA_INTEGRITY_BUDGET_DAYS\)", text), text
    assert re.search(r"custom X001\s+large-usd-spend \[high, section 9\]", text), text


def test_the_file_is_found_upward_in_pyproject_toml(seeded: Database, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    nested = PROJECT.replace("[check]", "[tool.mita-integrity.check]").replace(
        "[rules.AMT004]", "[tool.mita-integrity.rules.AMT004]").replace(
        "[[custom_rules]]", "[[tool.mita-integrity.custom_rules]]")
    project(tmp_path, '[project]\nname = "mita"\n' + nested, "pyproject.toml")
    (tmp_path / "app" / "jobs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "app" / "jobs")
    assert main(["--db", cli_url(seeded), "check", "--select", "X", "--format", "json"]) == 1
    counts = {r["code"]: r["count"] for r in json.loads(capsys.readouterr().out)["results"]}
    assert counts == EXPECTED
    assert main(["config", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["project_file"] == str(tmp_path / "pyproject.toml") and "upward" in doc["found"]


# ------------------------------------------------------------------------------------------------ first-class

def test_custom_rules_are_listed_explained_and_selectable(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = str(project(tmp_path))
    assert main(["--config", config, "rules"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"X001\s+high\s+none\s+transactions", listing) and "X002" in listing
    assert main(["--config", config, "rules", "X001"]) == 0
    explained = capsys.readouterr().out
    assert "large-usd-spend — high, section 9" in explained and "t.amount > 50000" in explained
    assert main(["--config", config, "rules", "goal-without-title", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "team query"
    assert main(["rules", "X001"]) == 3  # without the project file there is no such rule
    assert "unknown rule" in capsys.readouterr().err


def test_a_custom_rule_is_recorded_alerted_and_gives_the_same_count_alone(
        seeded: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for variable in ("MITA_SLACK_WEBHOOK_URL", "MITA_SMTP_URL", "SENTRY_DSN", "MITA_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(variable, raising=False)
    with HttpReceiver() as http:
        config = project(tmp_path, PROJECT + f'\n[alerts]\nwebhook_url = "{http.url("/hook")}"\n'
                                              '[alerts.routing]\nhigh = ["webhook"]\nmedium = ["webhook"]\n')
        base = ["--db", cli_url(seeded), "--config", str(config)]
        assert main([*base, "check", "--alert", "--format", "json", "--fail-on", "never"]) == 0
        full = {r["code"]: r["count"] for r in json.loads(capsys.readouterr().out)["results"]}
        assert "X001" in http.everything() and "X002" in http.everything()
    stored = run_sql(seeded, "SELECT r->>'code', (r->>'count')::int FROM integrity.runs, "
                             "jsonb_array_elements(report->'results') r WHERE r->>'code' LIKE 'X%' ORDER BY 1")
    assert dict(stored) == EXPECTED
    assert main([*base, "check", "--select", "X001", "--format", "json"]) == 1
    alone = json.loads(capsys.readouterr().out)["results"]
    assert [(r["code"], r["count"]) for r in alone] == [("X001", full["X001"])]
    assert full["X001"] == 3 and full["REF001"] == 0


def test_fix_lists_a_custom_rule_for_a_person(seeded: Database, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", cli_url(seeded), "--config", str(project(tmp_path)), "fix", "--select", "X",
                 "--format", "json"]) == 0
    items = {i["code"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert (items["X001"]["rows"], items["X001"]["safety"], items["X001"]["will_apply"]) == (3, "none", False)


# ------------------------------------------------------------------------------------------------ bad files

CUSTOM = '[[custom_rules]]\ncode = "X001"\nname = "n"\nsection = 9\nseverity = "high"\n'
BAD_FILES: dict[str, tuple[str, str]] = {
    # name: (file, words in the one error line)
    "not TOML": ("[check\nselect = ", "is not valid TOML"),
    "unknown top-level table": ("[checks]\nselect = []\n", "unknown key 'checks'"),
    "unknown key in [check]": ("[check]\nselct = [\"REF\"]\n", "did you mean select?"),
    "select names no rule": ("[check]\nselect = [\"NOPE999\"]\n", "NOPE999: no rule"),
    "budget_days not a number": ("[check]\nbudget_days = \"30\"\n", "budget_days must be a whole number"),
    "bad day boundary": ("[check]\nday_boundary = \"local\"\n", "is not a day boundary"),
    "unknown rule code in [rules]": ("[rules.AMT999]\nseverity = \"low\"\n", "'AMT999' is not a rule code"),
    "bad severity override": ("[rules.AMT004]\nseverity = \"urgent\"\n", "is not a severity"),
    "negative fail_above": ("[rules.AMT004]\nfail_above = -1\n", "fail_above must be a whole number"),
    "unknown key in a rule's settings": ("[rules.AMT004]\nfail_below = 1\n", "unknown key 'fail_below'"),
    "bad custom code": (CUSTOM.replace("X001", "Y001") + 'table = "goals"\nwhere = "true"\n', "not a team rule code"),
    "custom code of a built-in": (CUSTOM.replace("X001", "REF001") + 'table = "goals"\nwhere = "true"\n',
                                  "collides with a built-in rule"),
    "custom code twice": (CUSTOM + 'table = "goals"\nwhere = "true"\n' + CUSTOM.replace('"n"', '"m"')
                          + 'table = "goals"\nwhere = "true"\n', "already used"),
    "custom name of a built-in": (CUSTOM.replace('"n"', '"huge-amount"') + 'table = "goals"\nwhere = "true"\n',
                                  "already used by AMT004"),
    "unknown key in a custom rule": (CUSTOM + 'table = "goals"\nwhere = "true"\nsevrity = "low"\n',
                                     "did you mean severity?"),
    "custom rule with where and query": (CUSTOM + 'table = "goals"\nwhere = "true"\nquery = "SELECT 1"\n',
                                         "either table + where"),
    "custom rule in a header section": (CUSTOM.replace("9", "13") + 'table = "goals"\nwhere = "true"\n',
                                        "not a section that holds rules"),
    "where breaking out of its parenthesis": (CUSTOM + 'table = "goals"\nwhere = "true) OR (true"\n',
                                              "closes a parenthesis"),
    "where with a comment": (CUSTOM + 'table = "goals"\nwhere = "t.id IS NULL -- x"\n', "SQL comment"),
    "where that does not parse": (CUSTOM + 'table = "goals"\nwhere = "t.title LIKE"\n', "is not valid SQL"),
    "where reaching another rule's alias": (CUSTOM + 'table = "goals"\nwhere = "p.id IS NULL"\n',
                                            'missing FROM-clause entry for table "p"'),
    "query on a missing table": (CUSTOM + 'query = "SELECT id FROM no_such_table"\n', "is not valid SQL"),
    "query that deletes": (CUSTOM + 'query = "DELETE FROM goals RETURNING id"\n', "writes"),
    "query with a data-modifying WITH": (
        CUSTOM + 'query = "WITH d AS (UPDATE goals SET title = title RETURNING id) SELECT id FROM d"\n', "writes"),
    "two statements": (CUSTOM + 'query = "SELECT id FROM goals; DROP TABLE goals"\n', "holds a ';'"),
    "unknown key in [alerts]": ("[alerts]\nslack_hook = \"https://x.invalid/\"\n", "unknown key 'slack_hook'"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_project_file_is_one_line_and_nothing_runs(name: str, seeded: Database, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    text, words = BAD_FILES[name]
    config = project(tmp_path, text)
    report = tmp_path / "report.json"
    before = checksums(seeded)
    capsys.readouterr()
    code = main(["--db", cli_url(seeded), "--config", str(config), "check", "--record", "--format", "json",
                 "--output", str(report)])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, (code, out[-300:], err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert "Traceback" not in out + err and not out.strip()
    assert not report.exists()  # no report written
    assert checksums(seeded) == before  # nothing changed, and no run recorded (the migration chain's own
    # state lives in the integrity schema too, so the test is the runs table's absence)
    assert run_sql(seeded, "SELECT to_regclass('integrity.runs') IS NULL") == [(True,)]


def test_schedule_runs_the_custom_rules_and_refuses_a_bad_one_at_start(
        seeded: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for variable in ("MITA_SLACK_WEBHOOK_URL", "MITA_SMTP_URL", "SENTRY_DSN", "MITA_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(variable, raising=False)
    url = cli_url(seeded)
    assert main(["--db", url, "schedule", "--once", "--config", str(project(tmp_path)), "--fail-on", "never"]) == 0
    stored = run_sql(seeded, "SELECT r->>'code', (r->>'count')::int FROM integrity.runs, "
                             "jsonb_array_elements(report->'results') r WHERE r->>'code' LIKE 'X%' ORDER BY 1")
    assert dict(stored) == EXPECTED
    bad = project(tmp_path, PROJECT.replace("FROM goals g", "FROM goal g"), "bad.toml")
    capsys.readouterr()
    assert main(["--db", url, "--config", str(bad), "schedule", "--cron", "0 2 * * *"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'relation "goal" does not exist' in err, err


# ------------------------------------------------------------------- custom rules in the combined passes

# X003 finds the orphan goal links REF008 finds, through a subquery that calls goals `ref001_p`: the very
# alias REF001's join of users has in the transactions pass. SQL scoping keeps it the rule's own; bound
# after a comma, the engine's own reading of subquery aliases misses it, so the rule declares it (scoped).
ORPHAN_GOAL = f"""
ALTER TABLE transactions DROP CONSTRAINT fk_transactions_goal_id;
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, goal_id) VALUES
  ('20000000-0000-0000-0000-000000000007', '{U1}', 'car', 5, 'USD', now(), now(),
   'dead0000-0000-0000-0000-000000000001');
"""
ORPHAN_WHERE = ("t.goal_id IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM users u2, goals ref001_p WHERE ref001_p.id = t.goal_id AND u2.id = t.user_id)")
ORPHAN_RULE = f"""
[[custom_rules]]
code = "X003"
name = "goal-link-orphan"
section = 4
severity = "high"
table = "transactions"
where = "{ORPHAN_WHERE}"
"""


@pytest.mark.parametrize("parallel", [True, False])
def test_a_custom_predicate_gives_the_same_count_alone_and_beside_the_built_ins(
        seeded: Database, tmp_path: Path, parallel: bool) -> None:
    """The engine's "any subset" and "all at once" guarantees hold for the team's rules too: X001 and X003
    join the transactions pass with REF001, REF008, AMT004 … and each count equals the count alone."""
    from mita_integrity.cli import project_file

    run_sql(seeded, ORPHAN_GOAL)
    loaded = project_file.load(project(tmp_path, PROJECT + ORPHAN_RULE))

    def counts(select: tuple[str, ...]) -> dict[tuple[str, str], tuple[str, int, tuple[str, ...]]]:
        report = run_check(seeded, CheckRequest(select=select, project=loaded, parallel=parallel))
        return {(r.code, r.table): (r.status.value, r.count, tuple(sorted(r.sample))) for r in report.results}

    full = counts(())
    assert full[("X001", "transactions")][:2] == ("fail", 3)
    assert full[("X003", "transactions")] == ("fail", 1, ("20000000-0000-0000-0000-000000000007",))
    assert full[("REF008", "transactions")] == full[("X003", "transactions")]  # the same orphan, both ways
    for select in (("X001",), ("X003",), ("X001", "X003", "REF", "AMT"), ("REF001", "X003"), ("REF008", "AMT004")):
        together = counts(select)
        for key, value in together.items():
            assert full[key] == value, (select, key)
            assert counts((key[0],))[key] == value, (select, key)


def test_the_pass_builder_takes_a_custom_predicate_with_its_own_subquery_aliases(tmp_path: Path) -> None:
    """A team predicate's subquery aliases are its own (scoped): the pass builder's collision assertion
    accepts them beside a built-in join of the same name, and they add no join to the pass."""
    from mita_integrity.check.engine import pass_joins
    from mita_integrity.check.rule_registry import BY_CODE
    from mita_integrity.check.rules.base import RowRule
    from mita_integrity.cli import project_file

    loaded = project_file.load(project(tmp_path, PROJECT + ORPHAN_RULE))
    x003 = loaded.rule("X003")
    assert isinstance(x003, RowRule) and x003.scoped == ("ref001_p",)
    ref001, ref008 = BY_CODE["REF001"], BY_CODE["REF008"]
    assert isinstance(ref001, RowRule) and isinstance(ref008, RowRule)
    assert pass_joins([ref001, x003, ref008]) == pass_joins([ref001, ref008])
