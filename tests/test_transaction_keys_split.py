"""Issue 13's speed goals: DUP002 answered by the budget rules' grouping of daily_plan, and that grouping split
into ranges of users run on the check's two connections. Each must give exactly what the rules' own statements
give (the psql script's), alone and in every combination, with NULL keys, plan rows outside BUD001's window and
--since."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from mita_integrity.check import engine
from mita_integrity.check.engine import plan
from mita_integrity.check.rules import transaction_keys
from mita_integrity.check.rules.context import CheckContext, CheckOptions, Outcome, load_schema
from mita_integrity.check.rules.duplicates import DUP002
from mita_integrity.check.rules.plan_limits import BUD002
from mita_integrity.check.rules.spending import BUD001
from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.database.connection import Database, connect
from mita_integrity.findings import Report
from mita_integrity.runs.findings_history import record

from .test_transaction_keys import EDGES, OPTIONS, U1, U2, D, _key

EACH_OPTION_SET = pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: f"{o.day_boundary}-{o.since_seconds}-{o.budget_days}-{o.sample}")


@contextmanager
def edge_context(db: Database, options: CheckOptions, more: str) -> Iterator[CheckContext]:
    """Gives a check's context on db after EDGES and `more` are committed (its connection open for the block)."""
    with connect(db) as conn:
        conn.execute(EDGES.encode())
        conn.execute(more.encode())
    with connect(db) as conn:
        cur = conn.cursor()
        yield CheckContext(cur=cur, schema=load_schema(cur), options=options)


def recorded_keys(db: Database, report: Report) -> dict[str, list[str] | None]:
    """Records the report and gives, per rule, the keys its base kept (sorted; None: none kept)."""
    with connect(db) as conn:
        record(conn, report)
        rows = conn.execute("SELECT code, keys FROM integrity.check_base_results WHERE run_id = %s",
                            (report.run_id,)).fetchall()
    return {code: sorted(keys) if keys is not None else None for code, keys in rows}

# DUP002's edges beside the budget rules' (EDGES already holds one: U2's two 'food ' rows of one day).
PLAN_DUPLICATES = f"""
INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount, created_at) VALUES
  -- a NULL user and a NULL category are key values: the twin of EDGES' plan row 08
  ('21000000-0000-0000-0000-000000000001', NULL, {D} - interval '3 days', NULL, 5, 0, now()),
  -- outside BUD001's window (50 and 400 days ago): DUP002 reads all time
  ('21000000-0000-0000-0000-000000000002', '{U2}', {D} - interval '50 days' + interval '14:30', 'old', 5, 3, now()),
  ('21000000-0000-0000-0000-000000000003', '{U1}', {D} - interval '400 days', 'rent', 5, 3, now()),
  ('21000000-0000-0000-0000-000000000004', '{U1}', {D} - interval '400 days' + interval '1 hour', 'rent', 5, 3,
   now()),
  ('21000000-0000-0000-0000-000000000005', '{U1}', {D} - interval '400 days' + interval '2 hours', 'rent', 5, 3,
   now() - interval '100 days'),
  -- created long ago: --since leaves this key out
  ('21000000-0000-0000-0000-000000000006', '{U1}', {D} - interval '20 days', 'gym', 5, 0,
   now() - interval '100 days'),
  ('21000000-0000-0000-0000-000000000007', '{U1}', {D} - interval '20 days' + interval '09:00', 'gym', 5, 0,
   now() - interval '100 days'),
  -- the next day is another key; an empty category is not a NULL one
  ('21000000-0000-0000-0000-000000000008', '{U1}', {D} - interval '19 days', 'gym', 5, 0, now()),
  ('21000000-0000-0000-0000-000000000009', '{U1}', {D} - interval '9 days', '', 5, 0, now());
"""
UNIT = (*transaction_keys.RULES, DUP002)


def _merged(parts: list[list[Outcome]], options: CheckOptions) -> dict[str, tuple[object, ...]]:
    """Gives the outcomes of the parts made one, as the engine merges a split pass's results."""
    rules = {r.code: r for r in UNIT}
    by_code: dict[str, list[object]] = {}
    for outcomes in parts:
        for o in outcomes:
            by_code.setdefault(o.code, []).append(engine.result(rules[o.code], o))
    out = {}
    for code, found in by_code.items():
        merged = engine._merge(found, code in transaction_keys.FAMILY.sample_by_id, options.sample)  # type: ignore[arg-type]
        out[code] = _key(Outcome(code, merged.table, merged.count, merged.groups, merged.sample,
                                 column=merged.column), options)
    return out


@EACH_OPTION_SET
def test_dup002_in_the_shared_grouping_and_its_parts_give_each_rule_its_own_result(
        baseline_db: Database, options: CheckOptions) -> None:
    with edge_context(baseline_db, options, PLAN_DUPLICATES) as ctx:
        reference = {}
        for rule in UNIT:
            assert rule.evaluate is not None
            (own,) = rule.evaluate(ctx, rule)
            reference[rule.code] = _key(own, options)
        if options == CheckOptions():
            assert reference["DUP002"][2:4] == (6, 5), reference  # food, NULL/NULL, old, rent (3 rows), gym
        # U1 < U2: the first part holds U1, the last U2 and the NULL user ids; or no bound at all.
        ranges = [[(None, U2), (U2, None)], [(None, None)], [(None, U1), (U1, U2), (U2, None)]]
        for size in (1, 2, 3, 4):
            for chosen in itertools.combinations(UNIT, size):
                if "DUP002" not in {r.code for r in chosen} and size != 4:
                    continue  # the budget rules' own combinations are test_transaction_keys'
                expected = {r.code: reference[r.code] for r in chosen}
                shared = transaction_keys.evaluate(ctx, chosen)
                assert {o.code: _key(o, options) for o in shared} == expected, [r.code for r in chosen]
                if "DUP003" in {r.code for r in chosen}:
                    continue  # apart: never in a split pass
                for parts in ranges:
                    found = [transaction_keys.evaluate(ctx, chosen, part) for part in parts]
                    assert _merged(found, options) == expected, ([r.code for r in chosen], parts)


def test_dup002_joins_the_budget_pass_and_stays_apart_alone(baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        cur = conn.cursor()
        ctx = CheckContext(cur=cur, schema=load_schema(cur), options=CheckOptions(no_guarantees=True))
        _, passes = plan(ctx, [*transaction_keys.RULES, DUP002])
        _, alone = plan(ctx, [DUP002, *transaction_keys.RULES[:1]])
    assert sorted(tuple(sorted(r.code for r in p.rules)) for p in passes) == [("BUD001", "BUD002", "DUP002"),
                                                                              ("DUP003",)]
    assert [(p.name, [r.code for r in p.rules]) for p in alone] == [("duplicates", ["DUP002"]),
                                                                    ("transaction_keys", ["DUP003"])]


MANY_USERS = f"""
INSERT INTO users (id, email, password_hash)
  SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'u' || i || '@example.com', 'h'
    FROM generate_series(1, 400) i;
INSERT INTO transactions (id, user_id, category, amount, spent_at)
  SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid,
         CASE WHEN i % 7 = 0 THEN repeat('y', 101) ELSE 'food' END, CASE WHEN i % 11 = 0 THEN 0.001 ELSE i END,
         {D} - interval '1 day' * (i % 40) + interval '1 second' * (i % 3)
    FROM generate_series(1, 400) i, generate_series(1, 3) k;
INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount)
  SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid,
         {D} - interval '1 day' * (i % 40), 'food', 50, CASE WHEN i % 5 = 0 THEN 1 ELSE 3 * i END
    FROM generate_series(1, 400) i, generate_series(1, CASE WHEN i % 13 = 0 THEN 2 ELSE 1 END) k;
ANALYZE transactions;
ANALYZE daily_plan;
"""


def test_a_check_on_two_connections_splits_the_grouping_and_finds_the_same(baseline_db: Database) -> None:
    """The split pass's parts (one per connection) add up to the one-connection check, samples included."""
    with connect(baseline_db) as conn:
        conn.execute(EDGES.encode())
        conn.execute(PLAN_DUPLICATES.encode())
        conn.execute(MANY_USERS.encode())
    select = ["BUD001", "BUD002", "DUP002", "DUP003"]
    results = {}
    for parallel in (False, True):
        for sample in (3, 1000):
            report = run_check(baseline_db, CheckRequest(select=select, parallel=parallel, sample=sample))
            whole = {r.code: sample == 1000 or r.code == "BUD002" for r in report.results}
            results[parallel, sample] = {r.code: (r.status.value, r.count, r.groups,
                                                  tuple(sorted(r.sample)) if whole[r.code] else len(r.sample))
                                         for r in report.results}
            names = [p.name for p in report.passes]
            if parallel:
                parts = engine.PARTS_PER_CONNECTION * 2
                assert [f"transaction_keys[{i}/{parts}]" for i in range(1, parts + 1)] == \
                    sorted(n for n in names if n.startswith("transaction_keys[")), names
    for sample in (3, 1000):
        assert results[True, sample] == results[False, sample]
    assert all(results[False, 1000][code][1] > 0 for code in select), results


def test_a_recorded_check_keeps_the_same_keys_whoever_evaluates_them(baseline_db: Database) -> None:
    """What a base keeps of DUP002 (every row of its duplicated keys) and of BUD001/BUD002 (their violating keys)
    is the same from DUP002's own statement, the budget grouping on one connection, and its parts on two."""
    with connect(baseline_db) as conn:
        conn.execute(EDGES.encode())
        conn.execute(PLAN_DUPLICATES.encode())
        conn.execute(MANY_USERS.encode())
    kept = {}
    for name, select, parallel in (("alone", ["DUP002"], False), ("budget", ["BUD001", "BUD002"], False),
                                   ("shared", ["BUD001", "BUD002", "DUP002"], False),
                                   ("split", ["BUD001", "BUD002", "DUP002"], True)):
        report = run_check(baseline_db, CheckRequest(select=select, parallel=parallel, keep_base=True))
        if name == "split":
            assert "transaction_keys[2/4]" in [p.name for p in report.passes]
        kept[name] = recorded_keys(baseline_db, report)
    assert kept["alone"]["DUP002"] and kept["budget"]["BUD001"] and kept["budget"]["BUD002"], kept
    assert kept["shared"]["DUP002"] == kept["split"]["DUP002"] == kept["alone"]["DUP002"]
    for code in ("BUD001", "BUD002"):
        assert kept["shared"][code] == kept["split"][code] == kept["budget"][code]


# The schema at head as far as the merge needs it (transaction_keys.merges): 0023's key (NULLS NOT DISTINCT) and
# its validated midnight check, and no NULL user ids nor transaction categories; EDGES' rows that head's
# constraints forbid are removed first (a NULL-category plan row stays: head allows it), and a key of an
# infinite day is added on both sides.
HEAD_SCHEMA = """
DELETE FROM transactions WHERE user_id IS NULL OR category IS NULL;
DELETE FROM daily_plan WHERE user_id IS NULL OR date <> date_trunc('day', date, 'UTC');
DELETE FROM daily_plan p USING daily_plan q
 WHERE q.user_id = p.user_id AND q.date = p.date AND q.category IS NOT DISTINCT FROM p.category AND q.id < p.id;
ALTER TABLE transactions ALTER COLUMN user_id SET NOT NULL, ALTER COLUMN category SET NOT NULL;
ALTER TABLE daily_plan ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE daily_plan ADD CONSTRAINT uq_daily_plan_user_date_category
  UNIQUE NULLS NOT DISTINCT (user_id, date, category);
ALTER TABLE daily_plan ADD CONSTRAINT ck_daily_plan_date_midnight CHECK (date = date_trunc('day', date, 'UTC'));
"""
HEAD_KEYS = HEAD_SCHEMA + f"""
INSERT INTO transactions (id, user_id, category, amount, spent_at) VALUES
  ('10000000-0000-0000-0000-000000000040', '{U1}', 'inf', 1, 'infinity'),
  ('10000000-0000-0000-0000-000000000041', '{U2}', 'late', 3, {D} - interval '15 days' + interval '23:59:59.999999'),
  ('10000000-0000-0000-0000-000000000042', '{U2}', 'late', 4, {D} - interval '14 days');
INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) VALUES
  ('20000000-0000-0000-0000-000000000040', '{U1}', 'infinity', 'inf', 5, 1),
  ('20000000-0000-0000-0000-000000000041', '{U2}', {D} - interval '15 days', 'late', 5, 3),
  ('20000000-0000-0000-0000-000000000042', '{U2}', {D} - interval '14 days', 'late', 5, 3),
  ('20000000-0000-0000-0000-000000000043', '{U1}', {D} - interval '40 days', 'taxi', 5, 1);
"""
# Where a NULL would meet a NULL: the grouping matches them, a join would not (each needs the merge left out).
NULLS_MET = [
    ("transactions", "category", f"""INSERT INTO transactions (id, user_id, category, amount, spent_at) VALUES
        ('10000000-0000-0000-0000-000000000050', '{U1}', NULL, 1.10, {D} - interval '9 days')"""),
    ("transactions", "user_id", f"""INSERT INTO transactions (id, user_id, category, amount, spent_at) VALUES
        ('10000000-0000-0000-0000-000000000051', NULL, 'x', 5, {D} - interval '3 days')"""),
    ("daily_plan", "user_id", f"""INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount)
        VALUES ('20000000-0000-0000-0000-000000000051', NULL, {D} - interval '3 days', 'x', 5, 2)"""),
]


def _each_subset_whole_and_split(ctx: CheckContext, options: CheckOptions) -> None:
    """Asserts every subset of the unit, whole and in parts, gives each rule its own statement's result."""
    reference = {}
    for rule in UNIT:
        assert rule.evaluate is not None
        (own,) = rule.evaluate(ctx, rule)
        reference[rule.code] = _key(own, options)
    ranges = [[(None, U2), (U2, None)], [(None, None)], [(None, U1), (U1, U2), (U2, None)]]
    for size in (1, 2, 3, 4):
        for chosen in itertools.combinations(UNIT, size):
            expected = {r.code: reference[r.code] for r in chosen}
            assert {o.code: _key(o, options) for o in transaction_keys.evaluate(ctx, chosen)} == expected, \
                [r.code for r in chosen]
            if "DUP003" not in {r.code for r in chosen}:
                for parts in ranges:
                    found = [transaction_keys.evaluate(ctx, chosen, part) for part in parts]
                    assert _merged(found, options) == expected, ([r.code for r in chosen], parts)


@EACH_OPTION_SET
def test_at_head_the_plan_rows_met_by_a_merge_give_each_rule_its_own_result(
        baseline_db: Database, options: CheckOptions) -> None:
    with edge_context(baseline_db, options, HEAD_KEYS) as ctx:
        budget = frozenset({"BUD001", "BUD002"})
        if options.day_boundary == "user-timezone":  # a user's day is no UTC midnight: the general grouping
            assert transaction_keys.merges(ctx, budget) is None
        else:
            for codes in (budget, frozenset({"BUD001"})):
                assert transaction_keys.merges(ctx, codes), codes
                assert "FULL JOIN" in transaction_keys.shared_sql(ctx, codes, (None, U2))
            for codes in ({"BUD002"}, {"BUD001", "DUP003"}, {"BUD001", "DUP002"}):
                assert transaction_keys.merges(ctx, frozenset(codes)) is None, codes
            assert transaction_keys.merges(replace(ctx, options=replace(options, no_guarantees=True)), budget) is None
        if options == CheckOptions():  # drift, unfit rows, an overflowing key: each rule has something to find
            (bud001,) = transaction_keys.evaluate(ctx, (BUD001,))
            (bud002,) = transaction_keys.evaluate(ctx, (BUD002,))
            assert bud001.count >= 4 and bud002.count >= 5, (bud001, bud002)
        _each_subset_whole_and_split(ctx, options)
        # The merge's settings are put back for the passes after it.
        ctx.cur.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_hashagg')")
        before = ctx.cur.fetchone()
        transaction_keys.evaluate(ctx, (BUD001, BUD002))
        ctx.cur.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_hashagg')")
        assert ctx.cur.fetchone() == before


@pytest.mark.parametrize(("table", "column", "row"), NULLS_MET, ids=lambda v: v if isinstance(v, str) else "")
def test_a_nullable_key_column_leaves_the_merge_out(baseline_db: Database, table: str, column: str,
                                                    row: str) -> None:
    """A NULL the merge would not match (or a part's user range would not read) sends the statement back to the
    general grouping, which matches it as the rules' own statements do."""
    with connect(baseline_db) as conn:
        conn.execute(EDGES.encode())
        conn.execute(HEAD_KEYS.encode())
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL".encode())
        if table == "daily_plan":
            conn.execute(b"ALTER TABLE transactions ALTER COLUMN user_id DROP NOT NULL")
            conn.execute(NULLS_MET[1][2].encode())
        conn.execute(row.encode())
    with connect(baseline_db) as conn:
        cur = conn.cursor()
        ctx = CheckContext(cur=cur, schema=load_schema(cur), options=CheckOptions())
        assert transaction_keys.merges(ctx, frozenset({"BUD001", "BUD002"})) is None
        _each_subset_whole_and_split(ctx, CheckOptions())


def test_at_head_a_recorded_check_keeps_the_same_keys_merged_or_grouped(baseline_db: Database) -> None:
    """What a base keeps of BUD001/BUD002 (their violating keys) is the same from the merge, whole and split, as
    from the general grouping (--no-guarantees leaves the merge out)."""
    with connect(baseline_db) as conn:
        conn.execute(EDGES.encode())
        conn.execute(HEAD_KEYS.encode())
        conn.execute(MANY_USERS.replace("CASE WHEN i % 13 = 0 THEN 2 ELSE 1 END", "1").encode())
    kept = {}
    for name, parallel, no_guarantees in (("grouped", False, True), ("merged", False, False),
                                          ("split", True, False)):
        report = run_check(baseline_db, CheckRequest(select=["BUD001", "BUD002"], parallel=parallel,
                                                     no_guarantees=no_guarantees, keep_base=True))
        if name == "split":
            assert "transaction_keys[2/4]" in [p.name for p in report.passes]
        kept[name] = recorded_keys(baseline_db, report)
        kept[name]["counts"] = sorted((r.code, r.count, tuple(sorted(r.sample))) for r in report.results)
    assert kept["grouped"]["BUD001"] and kept["grouped"]["BUD002"], kept
    assert kept["merged"] == kept["split"] == kept["grouped"]
