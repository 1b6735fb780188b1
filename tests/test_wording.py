"""Words that mislead a newcomer (issue 16, items 5–9): what `fix` says with nothing to apply, hints that
follow the database's revision, hints that name the command that makes their change, PHY001 where amcheck
is absent, and the small slips ("1 row violate it", ".;", a flag without help, the docs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mita_integrity.check.rule_registry import ALL_RULES
from mita_integrity.cli import main
from mita_integrity.database.connection import Database
from mita_integrity.migration import command as migrate

from .dbstate import cli_url as _url
from .dbstate import run_sql as _sql

ROOT = Path(__file__).resolve().parents[1]
ANN = "00000000-0000-0000-0000-000000000001"
# A goal with a target of 0 (GOL005: a person decides) and one saved beyond its target (GOL003: --unsafe).
NOTHING_SAFE = f"""
INSERT INTO users (id, email, password_hash) VALUES ('{ANN}', 'ann@example.com', 'h');
INSERT INTO goals (id, user_id, title, target_amount, saved_amount) VALUES
  ('20000000-0000-0000-0000-000000000001', '{ANN}', 'zero', 0, 0),
  ('20000000-0000-0000-0000-000000000002', '{ANN}', 'over', 100, 150);"""


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_fix_with_nothing_to_apply_says_so_and_splits_what_is_left(capsys: pytest.CaptureFixture[str],
                                                                   baseline_db: Database) -> None:
    """Item 5."""
    _sql(baseline_db, NOTHING_SAFE)
    code, out, _ = _run(capsys, "--db", _url(baseline_db), "fix", "--select", "GOL005,GOL003", "--no-sql")
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert "Apply with" not in out and "0 rows to change" not in out
    assert last == ("Nothing to apply: no failing rule has a safe repair. 2 findings left (1 need --unsafe, "
                    "1 need a person; `mita-integrity rules CODE` explains one).")


def test_schema_hints_follow_the_revision(capsys: pytest.CaptureFixture[str], baseline_db: Database) -> None:
    """Item 6 (and item 9's "1 row violates it"): at the baseline SCH004 waits for the migrations; at head,
    with 0024's constraint left NOT VALID by a row a person must resolve, it waits for `migrate validate`."""
    _sql(baseline_db, NOTHING_SAFE.split("  ('20000000-0000-0000-0000-000000000002'")[0].rstrip(",\n") + ";")
    db = _url(baseline_db)
    _, out, _ = _run(capsys, "--db", db, "check", "--select", "SCH004")
    assert "`mita-integrity migrate upgrade head` (0024)" in out
    _, out, _ = _run(capsys, "--db", db, "fix", "--select", "SCH004", "--no-sql")
    assert "Left to the migrations (mita-integrity migrate upgrade head) (3)" in out

    migrate.upgrade(baseline_db, "head")
    _, out, _ = _run(capsys, "--db", db, "check", "--select", "SCH004")
    hint = " ".join(out.split())
    assert "0024 ran and left it NOT VALID" in hint and "then `mita-integrity migrate validate`" in hint
    assert "migrate upgrade head" not in hint
    _, out, _ = _run(capsys, "--db", db, "fix", "--select", "SCH004", "--no-sql")
    assert "Left to mita-integrity migrate validate (1): SCH004 goals (1)" in out
    assert "wait for migrate validate" in out and "migrate upgrade head" not in out

    _, out, err = _run(capsys, "--db", db, "migrate", "validate")
    assert re.search(r"NOT VALID +goals\.ck_goals_target_positive: 1 row violates it", out), out + err
    assert "1 row violate " not in out + err


def test_every_hint_that_promises_a_change_names_the_command_with_apply() -> None:
    """Item 7."""
    promising = [r for r in ALL_RULES if "mita-integrity fix" in r.hint]
    assert promising
    assert [r.code for r in promising if "mita-integrity fix --apply" not in r.hint] == []
    assert [r.code for r in ALL_RULES if "--unsafe" in r.hint and "mita-integrity fix --apply --unsafe" not in r.hint
            ] == []


def test_phy001_says_when_amcheck_is_not_available_on_the_server(capsys: pytest.CaptureFixture[str],
                                                                  baseline_db: Database) -> None:
    """Item 8: CREATE EXTENSION is only advice where the server ships amcheck (the embedded one does not)."""
    available = _sql(baseline_db, "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'")[0][0]
    code, out, _ = _run(capsys, "--db", _url(baseline_db), "check", "--physical", "--select", "PHY001",
                        "--format", "json")
    import json

    reason = json.loads(out)["results"][0]["reason"]
    if available:
        assert "CREATE EXTENSION amcheck" in reason
    else:
        assert reason.startswith("amcheck is not available on this server") and "CREATE EXTENSION" not in reason


def test_an_unknown_format_reads_without_a_stray_full_stop(capsys: pytest.CaptureFixture[str]) -> None:
    """Item 9."""
    code, _, err = _run(capsys, "check", "--format", "xml")
    assert code == 3 and ".;" not in err and "'prometheus'; see mita-integrity --help" in err


def test_every_option_of_fix_and_undo_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Item 9: `fix --day-boundary` had none."""
    from mita_integrity.cli import cli

    for name in ("fix", "undo", "check"):
        command = cli.commands[name]
        bare = [p.name for p in command.params if getattr(p, "help", None) is None and p.name not in (
            "batch_size", "fmt", "run_id")]
        assert name != "fix" or "day_boundary" not in bare, bare
    code, out, _ = _run(capsys, "fix", "--help")
    assert code == 0 and "The day a transaction belongs to" in " ".join(out.split())


def test_the_docs_say_what_the_tool_does_with_output_folders_and_the_integrity_schema() -> None:
    """Item 9: the tool makes an --output folder; `check --record` writes (it creates the integrity schema)."""
    operations = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    assert "The folder must exist" not in operations and "made when missing" in operations
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "never by `check`" not in readme
    assert "`check --record` (recording a run is a write)" in readme
