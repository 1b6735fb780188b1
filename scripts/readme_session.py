"""The README's demo session, generated from a real run so that it cannot drift from what the tool prints.

    python scripts/readme_session.py            # runs the session, rewrites the README's session blocks
    python scripts/readme_session.py --print    # runs it and prints the blocks instead

It runs the console script exactly as a newcomer would — `mita-integrity demo` on the embedded server of a
throw-away MITA_INTEGRITY_HOME, then the commands the demo suggests, then what a person does about the
rows left to them — and captures each command's stderr and stdout. Long tables and lists are cut the same
way every time (`…`), and the throw-away home is shown as the default one a user would have. The blocks
sit in README.md between `<!-- session N: … -->` and `<!-- end of session N -->`; tests/test_readme.py
runs this script and compares, apart from ids, times and durations (`normalise`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCRIPT = Path(sys.executable).with_name("mita-integrity")
SHOWN_HOME = "/root/.local/share/mita-integrity"  # the default data folder (platformdirs) of a root user
WIDTH = "120"  # the terminal width the session is shown at (rich reads COLUMNS)

# What a person resolves by hand after the demo (README: "A person then resolves …"): the rows no safe
# repair may touch. Each is a decision a real person would make with the user; here, one plausible answer.
PERSON_SQL = """
UPDATE goals SET target_amount = 100 WHERE target_amount <= 0;
UPDATE transactions SET category = 'refund' WHERE amount < 0 AND category NOT IN ('income', 'refund', 'transfer');
UPDATE daily_plan SET planned_amount = 0 WHERE planned_amount < 0;
DELETE FROM expenses WHERE user_id !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
   OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id::text = expenses.user_id);
DELETE FROM user_answers WHERE user_id !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
   OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id::text = user_answers.user_id);
DELETE FROM user_profiles WHERE user_id !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
   OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id::text = user_profiles.user_id);
"""


def _cut_tables(lines: list[str], keep_head: int = 3, keep_tail: int = 2) -> list[str]:
    """Cuts every run of more than 8 table rows (lines starting with │) to its first and last rows."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].startswith("│"):
            j += 1
        if j - i > 8:
            out += lines[i:i + keep_head] + ["…"] + lines[j - keep_tail:j]
            i = j
        elif j > i:
            out += lines[i:j]
            i = j
        else:
            out.append(lines[i])
            i += 1
    return out


def _cut_long(line: str) -> str:
    """Cuts a listing ("Needs a person (17): a, b, c, …") after three items, a long line at a `; `."""
    listing = re.match(r"^([A-Z][^:]*\(\d+\): )(.*)$", line)
    if listing and listing.group(2).count(", ") > 2:
        return listing.group(1) + ", ".join(listing.group(2).split(", ")[:3]) + ", …"
    if len(line) > 260 and "; " in line[:260]:
        return line[:line.rindex("; ", 0, 260)] + "; …"
    return line


def _cut_report(lines: list[str]) -> list[str]:
    """Keeps of the demo's text report its first line, the REF003 finding and the summary."""
    start = lines.index("The report before any repair:") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("verdict")) + 1
    report = lines[start:end]
    ref003 = next(i for i, line in enumerate(report) if "REF003" in line and "daily_plan.user_id" in line)
    kept = [report[0], "…", " 4  Orphaned records", *report[ref003:ref003 + 3], "…", *report[-3:]]
    return lines[:start] + kept + lines[end:]


def _cut_conflicts(lines: list[str]) -> list[str]:
    conflicts = [i for i, line in enumerate(lines) if line.startswith(("  conflict: ", "  … and "))]
    if len(conflicts) <= 4:
        return lines
    return lines[:conflicts[3]] + ["  …"] + lines[conflicts[-1] + 1:]


class Session:
    """Runs commands as a newcomer would and keeps what the README shows of them."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NO_COLOR", "FORCE_COLOR")}
        self.env.update(MITA_INTEGRITY_HOME=str(home), COLUMNS=WIDTH, TERM="dumb")
        self.blocks: list[list[str]] = [[]]

    def shown(self, text: str) -> str:
        return text.replace(str(self.home), SHOWN_HOME)

    def say(self, line: str) -> None:
        self.blocks[-1].append(self.shown(line))

    def run(self, shell: str, args: list[str], *, stdout: bool = True, last: int | None = None,
            status: bool = False) -> str:
        """Runs `mita-integrity ARGS`, shown as `$ SHELL`: its stderr, then its stdout (or only its `last`
        lines after a `…`), then `$ echo $?` and the exit code when `status`; gives its stdout."""
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=self.env, timeout=900)
        out = done.stdout.splitlines() if stdout else []
        if last is not None:
            out = ["…", *out[-last:]]
        lines = [self.shown(line.rstrip()) for line in done.stderr.splitlines() + out]  # before any cut
        lines = [_cut_long(line) for line in _cut_conflicts(_cut_tables(lines))]
        self.say(f"$ {shell}")
        for line in lines:
            self.say(line)
        if status:
            self.say("$ echo $?")
            self.say(str(done.returncode))
        return done.stdout

    def sql(self, url: str, statements: str) -> None:
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute(statements.encode())

    def next_block(self) -> None:
        self.blocks.append([])


def run_session(home: Path) -> list[str]:
    """Runs the whole session in a fresh home; gives the README's blocks (the embedded server is stopped)."""
    session = Session(home)
    try:
        demo = subprocess.run([str(SCRIPT), "demo"], capture_output=True, text=True, env=session.env, timeout=900)
        if demo.returncode != 0:
            raise SystemExit(f"the demo failed:\n{demo.stderr}")
        lines = [session.shown(line.rstrip()) for line in (demo.stderr + demo.stdout).splitlines()]
        lines = [_cut_long(line) for line in _cut_tables(_cut_report(lines))]
        session.say("$ pip install . && mita-integrity demo")
        for line in lines:
            session.say(line)
        fixed = re.search(r"^  mita-integrity undo ([0-9a-f-]{36})", demo.stdout, re.MULTILINE)
        url = re.search(r"^  export DATABASE_URL='([^']+)'", demo.stdout, re.MULTILINE)
        assert fixed and url, demo.stdout
        session.env["DATABASE_URL"] = url.group(1)
        session.say(f"$ export DATABASE_URL='{url.group(1)}'")
        session.run(f"mita-integrity undo {fixed.group(1)[:8]}", ["undo", fixed.group(1)[:8]])
        session.run("mita-integrity fix --no-sql", ["fix", "--no-sql"])
        session.run("mita-integrity runs", ["runs"])

        session.next_block()
        session.run("mita-integrity fix --apply --unsafe --select GOL003", ["fix", "--apply", "--unsafe", "--select",
                                                                            "GOL003"])
        session.sql(url.group(1), PERSON_SQL)
        session.run("mita-integrity migrate validate", ["migrate", "validate"])
        session.run("mita-integrity check --record --fail-on never > /dev/null",
                    ["check", "--record", "--fail-on", "never"], stdout=False)
        session.run("mita-integrity verify", ["verify"], last=1, status=True)
    finally:
        _stop_server(home)
    return ["\n".join(block) for block in session.blocks]


def _stop_server(home: Path) -> None:
    """Stops the embedded server this session started (its pid is the first line of postmaster.pid)."""
    pid_file = home / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ProcessLookupError, ValueError):
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # a fast shutdown
        # Wait until it has gone: its shutdown checkpoint still writes pg_wal, and the home is removed next.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # ProcessLookupError once it has exited
            time.sleep(0.1)


def blocks_in(readme: str) -> list[str]:
    """Gives the generated session blocks of the README, in order."""
    return re.findall(r"<!-- session \d+:[^>]*-->\n```text\n(.*?)\n```\n<!-- end of session \d+ -->", readme, re.S)


def with_blocks(readme: str, blocks: list[str]) -> str:
    """Gives the README with its session blocks replaced by `blocks`."""
    parts = iter(blocks)
    return re.sub(r"(<!-- session \d+:[^>]*-->\n```text\n)(.*?)(\n```\n<!-- end of session \d+ -->)",
                  lambda m: m.group(1) + next(parts) + m.group(3), readme, flags=re.S)


# What changes from run to run, and only that: ids, times, durations, and the counts that follow the seed's
# anchor (the server's current hour: how many plan days overrun, how many rows the calendar holds).
_VARYING = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "<id>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?( UTC)?"), "<time>"),
    (re.compile(r"\d{8}T\d{6}Z"), "<time>"),
    (re.compile(r"\d+(\.\d+)? s\b"), "<n> s"),
    (re.compile(r"[\d,]+ rows in all"), "<n> rows in all"),
    (re.compile(r"CAL002 daily_plan \([\d,]+\)"), "CAL002 daily_plan (<n>)"),
    # verify's referential-integrity line: the number of references follows the seed's clock anchor
    (re.compile(r"[\d.]+ % \((\d[\d,]*) of [\d,]+ (rows|references) orphaned"), r"<p> % (\1 of <n> \2 orphaned"),
    (re.compile(r"PostgreSQL 16\.\d+"), "PostgreSQL 16.<n>"),
]


def normalise(text: str) -> str:
    """Gives the text with ids, times, durations and anchor-dependent counts replaced by placeholders;
    table borders and padding are squeezed, since a column's width follows its widest (varying) cell."""
    for pattern, placeholder in _VARYING:
        text = pattern.sub(placeholder, text)
    return "\n".join(" ".join(line.replace("━", "").replace("─", "").split()) for line in text.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the blocks instead of rewriting README.md")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mita-readme-") as home:
        blocks = run_session(Path(home))
    if options.print:
        print("\n\n".join(blocks))
        return 0
    readme = README.read_text()
    if len(blocks_in(readme)) != len(blocks):
        raise SystemExit(f"README.md has {len(blocks_in(readme))} session blocks, the session {len(blocks)}")
    README.write_text(with_blocks(readme, blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
