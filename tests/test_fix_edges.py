"""Issue 14, items 11 and 12: repairs that stick (or leave the row to a person), and exact archives.

A finding a rule raises is either repairable or a person's, never a loop: a second `fix --apply` archives
nothing. And the archive's row images are exact whatever the server's output settings.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from mita_integrity.database.connection import Database
from mita_integrity.findings import FixSafety
from mita_integrity.repair.apply import apply_fix
from mita_integrity.repair.plan import FixRequest, plan_fix
from mita_integrity.repair.repairs import REPAIRS
from mita_integrity.repair.repairs.rows import RowRepair
from mita_integrity.repair.undo import undo_run

from .test_trigger import ANN, BOB, D1, D2, add, at, d, db, plan, sql
from .test_trigger_edges import LONG, count

__all__ = ["db"]  # the fixture, re-exported for pytest


def fix(db: Database, *codes: str) -> tuple[int, list[str], str]:
    """Runs fix --apply on the codes (all when none); gives (rows archived, notes, run id)."""
    request = FixRequest(select=codes, budget_days=3650)
    outcome = apply_fix(db, plan_fix(db, request), request)
    return outcome.archived, [n for i in outcome.items for n in i.done.notes], outcome.run_id


def users(db: Database, *ids: str) -> None:
    sql(db, "INSERT INTO users (id, email, password_hash) SELECT u, u || '@example.com', 'h' FROM unnest(%s::uuid[]) u",
        (list(ids),))


# --- 11. AMT006 ------------------------------------------------------------------------------------------


def test_amt006_leaves_a_day_of_refunds_alone(db: Database) -> None:
    add(db, ANN, at(D1), "refund", "-5.00")  # allowed by 0024's CHECK; the trigger makes the plan -5.00
    assert plan(db) == {(ANN, D1, "refund"): d("-5.00")}
    assert count(db, "AMT006") == 0  # today: 1, and its repair changes nothing, run after run
    assert fix(db, "AMT006")[0] == 0


def test_amt006_repair_changes_what_no_refund_explains_and_then_it_passes(db: Database) -> None:
    add(db, ANN, at(D1), "food", "2.00")
    sql(db, "UPDATE daily_plan SET spent_amount = -3")
    assert count(db, "AMT006") == 1
    assert fix(db, "AMT006")[0] == 1
    assert plan(db) == {(ANN, D1, "food"): d("2.00")}
    assert count(db, "AMT006") == 0
    assert fix(db, "AMT006")[0] == 0


# --- 11. TIM001 and repairs that verify their own effect ---------------------------------------------------


def _tim001_rows(db: Database) -> tuple[str, str]:
    """A row updated before it was created (mendable) and one created in the future (a person's)."""
    past, future = str(uuid.uuid4()), str(uuid.uuid4())
    sql(db, "INSERT INTO transactions (id, user_id, category, amount, spent_at, created_at, updated_at) VALUES "
            "(%s, %s, 'food', 1, now(), now() - interval '1 day', now() - interval '2 days'), "
            "(%s, %s, 'food', 1, now(), now() + interval '3 days', now() - interval '2 days')",
        (past, ANN, future, ANN))
    return past, future


def test_tim001_repair_sticks_and_a_row_created_in_the_future_is_a_persons(db: Database) -> None:
    past, future = _tim001_rows(db)
    archived, _, _ = fix(db, "TIM001")
    assert archived == 1  # the past row; the table's trigger stamped now(), which is after its created_at
    assert count(db, "TIM001") == 1
    assert fix(db, "TIM001")[0] == 0  # today: the future row is archived (and not mended) on every run
    plan_item = next(i for i in plan_fix(db, FixRequest(select=("TIM001",))).items if i.code == "TIM001")
    assert "rows created in the future need a person" in plan_item.action


def test_a_repair_whose_change_a_trigger_undoes_puts_the_row_back_and_says_so(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    past, future = _tim001_rows(db)
    monkeypatch.setitem(REPAIRS, "TIM001", RowRepair(FixSafety.SAFE, "updated_at = t.created_at"))  # no guard
    before = sql(db, "SELECT updated_at FROM transactions WHERE id = %s", (future,))
    archived, notes, _ = fix(db, "TIM001")
    assert archived == 1 and any(future in n and "need a person" in n for n in notes)
    assert sql(db, "SELECT updated_at FROM transactions WHERE id = %s", (future,)) == before  # put back
    assert fix(db, "TIM001")[0] == 0


# --- the whole loop: a second fix --apply archives nothing -----------------------------------------------


def test_a_second_fix_apply_archives_nothing(baseline_db: Database) -> None:
    """Every edge this issue names, at 0021 (no trigger): the first run repairs, the second finds nothing."""
    db = baseline_db
    users(db, ANN, BOB)
    add(db, ANN, at(D1), "food", "0.004")  # three decimals: a person's (BUD002)
    add(db, ANN, at(D1), "food", "2.00")
    add(db, ANN, at(D1), LONG, "5.00")  # too long for the plan: a person's
    add(db, ANN, at(D1), "food", "NaN")
    add(db, BOB, at(D2), "refund", "-4.00")  # a refund day: its plan row is rightly negative
    _tim001_rows(db)
    sql(db, "INSERT INTO daily_plan (user_id, date, category, spent_amount) VALUES (%s, %s, 'rent', -1)",
        (ANN, at(D2, "00:00")))
    first, _, _ = fix(db)
    assert first > 0
    second, notes, _ = fix(db)
    assert second == 0, notes
    assert count(db, "BUD001") == 0 and count(db, "AMT006") == 0
    assert plan(db)[(BOB, D2, "refund")] == d("-4.00")


# --- 12. exact archives ----------------------------------------------------------------------------------


def test_the_archive_is_exact_whatever_extra_float_digits_the_server_gives(pg: object, baseline_db: Database) -> None:
    db = baseline_db
    name = db.dbname
    sql(db, f'ALTER DATABASE "{name}" SET extra_float_digits = 0')
    sql(db, f'ALTER DATABASE "{name}" SET IntervalStyle = sql_standard')
    orphan = str(uuid.uuid4())  # REF001: a transaction of nobody, archived then deleted
    sql(db, "INSERT INTO transactions (id, user_id, category, amount, confidence_score) "
            "VALUES (%s, %s, 'food', 1.5, 0.1::float8 + 0.2::float8)", (orphan, str(uuid.uuid4())))
    image = "SELECT md5(t::text) FROM transactions t WHERE id = %s"
    with_digits = f"SET extra_float_digits = 3; {image}"
    original = sql(db, with_digits.replace("%s", f"'{orphan}'"))
    archived, _, run_id = fix(db, "REF001")
    assert archived == 1
    stored = sql(db, "SELECT before->>'confidence_score' FROM integrity.archive WHERE run_id = %s", (run_id,))
    assert stored == [("0.30000000000000004",)]  # today: 0.3
    outcome = undo_run(db, run_id)
    assert outcome.restored == 1 and not outcome.conflicts
    assert sql(db, with_digits.replace("%s", f"'{orphan}'")) == original  # byte-exact again
    assert sql(db, "SELECT amount FROM transactions WHERE id = %s", (orphan,)) == [(Decimal("1.5"),)]
