"""`demo`: a newcomer's walkthrough on a database of its own (mita_demo), embedded by default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import report as reports
from ..check.run import CheckRequest, run_check
from ..database import embedded
from ..database.connection import Database, connect, transaction
from ..database.target import recreate_database
from ..findings import FixSafety, Report
from ..migration import command as migrate
from ..migrations.frozen.kit_v1 import quiet
from ..repair.apply import FixOutcome, apply_fix
from ..repair.plan import FixPlan, FixRequest, plan_fix
from ..repair.undo import UndoMode, UndoOutcome, undo_run
from ..report import next_steps
from ..runs import findings_history as history
from ..seed import SeedOptions, SeedResult, seed_database
from ..verify.scorecard import Scorecard, run_verify

DEMO_DATABASE = "mita_demo"


@dataclass(frozen=True)
class DemoResult:
    """What the demo built."""

    database: Database
    revision: str | None
    seed: SeedResult
    report: Report
    plan: FixPlan
    fixed: FixOutcome
    after: Report
    head: str | None
    scorecard: Scorecard
    undo_preview: UndoOutcome  # what `undo` of the fix run would do now (a dry run): the migrations came after it


def run_demo(
    server: Database,
    *,
    users: int = 2000,
    days: int = 30,
    seed: int = 42,
    say: Callable[[str], None],
    progress: Callable[[str, int, int], None] | None = None,
    reports_dir: Path | None = None,
) -> DemoResult:
    """Recreates mita_demo on the server, migrates it to the baseline, seeds it with defects; gives the result."""
    reports_dir = reports_dir or embedded.home() / "reports"
    with connect(server.with_dbname("postgres"), autocommit=True) as admin:
        recreate_database(admin, DEMO_DATABASE)
    db = server.with_dbname(DEMO_DATABASE)
    say(f"1. created a fresh database {DEMO_DATABASE}")
    state = migrate.upgrade(db, migrate.BASELINE)
    say(f"2. migrated it to {state.to_revision}: the production schema as it stood before 0022 (26 tables)")
    with connect(db) as conn:
        result = seed_database(conn, SeedOptions(users=users, days=days, seed=seed, corrupt=True), progress=progress)
    total = sum(result.rows.values())
    codes = len([k for k in result.truth if "." not in k])
    say(
        f"3. seeded {users:,} users, {result.rows.get('transactions', 0):,} transactions and {total:,} rows in all "
        f"over {days} days, with defects of {codes} rule codes in known numbers ({result.seconds:.1f} s)"
    )
    report = run_check(db, CheckRequest())
    failing = sum(1 for r in report.results if r.failed)
    say(f"4. checked it read-only with the whole catalogue: {failing} failing results in "
        f"{report.duration_ms / 1000:.1f} s")
    request = FixRequest()
    plan = plan_fix(db, request)
    say(f"5. planned the repairs (a dry run): {plan.rows_to_change:,} rows in {len(plan.to_apply)} rules have a safe "
        f"repair; {len(plan.items) - len(plan.to_apply)} findings are left "
        f"({next_steps.left_split(next_steps.left_counts(plan))})")
    fixed = apply_fix(db, plan, request)
    say(f"6. applied the safe repairs in batches: {fixed.changed:,} rows changed, every before-image archived "
        f"in integrity.archive (run {fixed.run_id}, {fixed.seconds:.1f} s)")
    after = run_check(db, CheckRequest())
    safe_left = sorted({r.code for r in after.results if r.failed and r.fix_safety is FixSafety.SAFE})
    still = sum(1 for r in after.results if r.failed)
    say(f"7. checked again: {still} failing results left (were {failing}); rules with a safe repair still failing: "
        f"{', '.join(safe_left) or 'none'}")
    with quiet():
        head = migrate.upgrade(db, "head").to_revision
    say(f"8. migrated to {head} online: foreign keys, the unique calendar key, CHECKs, the spent_amount trigger "
        "(each migration's clean-up archived like a fix)")
    with connect(db) as conn:  # the first check joins the history too, so the trend starts there
        history.record(conn, report)
    recorded = run_check(db, CheckRequest())
    with connect(db) as conn:
        delta = history.record(conn, recorded)
        with transaction(conn, read_only=True) as cur:
            trend = history.trend(cur, until=recorded.run_id)
    page = reports_dir / reports.file_name(recorded, "html")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(reports.render(recorded, "html", trend=trend))
    say(f"9. checked again and recorded both checks ({recorded.run_id}): "
        f"{sum(1 for r in recorded.results if r.failed)} failing results, {len(delta.resolved)} resolved since the "
        f"first; the HTML report with trends: {page}")
    card = run_verify(db)
    waiting = [line.name for line in card.lines if not line.passed]
    say(f"10. verified the success metrics: {len(card.lines) - len(waiting)} of {len(card.lines)} pass"
        + (f"; {', '.join(waiting)} wait for a person (the scorecard follows)" if waiting else ""))
    preview = undo_run(db, fixed.run_id, mode=UndoMode.DRY_RUN)
    return DemoResult(db, state.to_revision, result, report, plan, fixed, after, head, card, preview)
