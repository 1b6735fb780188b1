"""Issue 13.3: the one grouping of transaction keys gives each of BUD001, BUD002, DUP003 exactly what its own
statement gives (the unshared form the psql script prints), alone and in every combination, on a database
with defects of all three and their edge values."""

from __future__ import annotations

import itertools

import pytest

from mita_integrity.check.engine import plan
from mita_integrity.check.rule_registry import FAMILY_OF
from mita_integrity.check.rules import transaction_keys
from mita_integrity.check.rules.context import CheckContext, CheckOptions, Outcome, load_schema
from mita_integrity.database.connection import Database, connect

U1 = "00000000-0000-0000-0000-00000000a001"
U2 = "00000000-0000-0000-0000-00000000a002"
D = "(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"  # today, midnight UTC

EDGES = f"""
ALTER TABLE transactions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE daily_plan ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE transactions ALTER COLUMN category DROP NOT NULL;
ALTER TABLE daily_plan ALTER COLUMN category DROP NOT NULL;
ALTER TABLE transactions ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE transactions DROP CONSTRAINT IF EXISTS fk_transactions_user_id;
INSERT INTO users (id, email, password_hash, timezone) VALUES
  ('{U1}', 'a@example.com', 'h', 'Pacific/Kiritimati'), ('{U2}', 'b@example.com', 'h', NULL);
INSERT INTO transactions (id, user_id, category, amount, spent_at, deleted_at) VALUES
  -- DUP003: two identical rows; a third soft-deleted copy; the same second with another amount
  ('10000000-0000-0000-0000-000000000001', '{U1}', 'food', 12.40, {D} - interval '2 days 12:31:07.1', NULL),
  ('10000000-0000-0000-0000-000000000002', '{U1}', 'food', 12.40, {D} - interval '2 days 12:31:07.9', NULL),
  ('10000000-0000-0000-0000-000000000003', '{U1}', 'food', 12.40, {D} - interval '2 days 12:31:07.5', now()),
  ('10000000-0000-0000-0000-000000000004', '{U1}', 'food', 12.41, {D} - interval '2 days 12:31:07.2', NULL),
  -- three rows of one key, two of them the same second with a NULL category and a NULL user
  ('10000000-0000-0000-0000-000000000005', NULL, NULL, 3, {D} - interval '3 days' + interval '08:00:00', NULL),
  ('10000000-0000-0000-0000-000000000006', NULL, NULL, 3, {D} - interval '3 days' + interval '08:00:00.2', NULL),
  ('10000000-0000-0000-0000-000000000007', NULL, NULL, 4, {D} - interval '3 days' + interval '09:00:00', NULL),
  -- trailing spaces are another category; two rows at different seconds are no duplicate
  ('10000000-0000-0000-0000-000000000008', '{U2}', 'food ', 5, {D} - interval '1 day' + interval '10:00', NULL),
  ('10000000-0000-0000-0000-000000000009', '{U2}', 'food', 5, {D} - interval '1 day' + interval '10:00', NULL),
  ('10000000-0000-0000-0000-000000000010', '{U2}', 'food', 5, {D} - interval '1 day' + interval '10:00:01', NULL),
  -- day boundaries in UTC: the last instant of a day and the first of the next
  ('10000000-0000-0000-0000-000000000011', '{U2}', 'bus', 2, {D} - interval '4 days' - interval '1 microsecond', NULL),
  ('10000000-0000-0000-0000-000000000012', '{U2}', 'bus', 2, {D} - interval '4 days', NULL),
  -- BUD002: NaN, three decimals, a 101-character category, a key whose total overflows the plan
  ('10000000-0000-0000-0000-000000000013', '{U2}', 'fees', 'NaN', {D} - interval '5 days', NULL),
  ('10000000-0000-0000-0000-000000000014', '{U2}', 'fees', 0.005, {D} - interval '5 days', NULL),
  ('10000000-0000-0000-0000-000000000015', '{U2}', repeat('x', 100) || ' ', 1, {D} - interval '5 days', NULL),
  ('10000000-0000-0000-0000-000000000016', '{U2}', 'house', 6000000000, {D} - interval '6 days', NULL),
  ('10000000-0000-0000-0000-000000000017', '{U2}', 'house', 5000000000, {D} - interval '6 days' + interval '1h', NULL),
  -- negative and soft-deleted spending, a row outside the window (all time for BUD002 and DUP003)
  ('10000000-0000-0000-0000-000000000018', '{U2}', 'gift', -7.25, {D} - interval '7 days', NULL),
  ('10000000-0000-0000-0000-000000000019', '{U2}', 'gift', 100, {D} - interval '7 days', now()),
  ('10000000-0000-0000-0000-000000000020', '{U2}', 'old', 0.001, {D} - interval '90 days', NULL),
  ('10000000-0000-0000-0000-000000000021', '{U2}', 'old', 9, {D} - interval '90 days', NULL),
  ('10000000-0000-0000-0000-000000000022', '{U2}', 'old', 9, {D} - interval '90 days', NULL),
  -- near the plan's limit: fits alone, and its key still fits
  ('10000000-0000-0000-0000-000000000023', '{U1}', 'car', 9999999999.99, {D} - interval '8 days', NULL),
  ('10000000-0000-0000-0000-000000000024', '{U1}', 'car', 0.00, {D} - interval '8 days', NULL),
  ('10000000-0000-0000-0000-000000000025', '{U1}', NULL, 1.10, {D} - interval '9 days', NULL),
  ('10000000-0000-0000-0000-000000000026', '{U1}', 'taxi', 4.50, {D} - interval '10 days', NULL),
  -- undated for BUD002: no user, or no amount (BUD002 names neither; a NaN without a user is NUL's)
  ('10000000-0000-0000-0000-000000000030', NULL, 'fees', 'NaN', {D} - interval '5 days', NULL),
  ('10000000-0000-0000-0000-000000000031', '{U2}', 'fees', NULL, {D} - interval '5 days', NULL),
  -- an empty category is not a NULL one (the plan row below has NULL on that day)
  ('10000000-0000-0000-0000-000000000029', '{U1}', '', 1.10, {D} - interval '9 days', NULL),
  -- a key of exactly two rows, both the duplicate
  ('10000000-0000-0000-0000-000000000027', '{U1}', 'tea', 2.20, {D} - interval '12 days' + interval '07:00:00.3', NULL),
  ('10000000-0000-0000-0000-000000000028', '{U1}', 'tea', 2.20, {D} - interval '12 days' + interval '07:00:00.6', NULL);
INSERT INTO daily_plan (id, user_id, date, category, planned_amount, spent_amount) VALUES
  -- right, wrong, duplicated (summed), NaN, NULL spent, a plan row with no spending, a NULL category
  ('20000000-0000-0000-0000-000000000001', '{U1}', {D} - interval '2 days', 'food', 50, 37.21),
  ('20000000-0000-0000-0000-000000000002', '{U2}', {D} - interval '1 day', 'food', 50, 10.00),
  ('20000000-0000-0000-0000-000000000003', '{U2}', {D} - interval '1 day', 'food ', 50, 2.50),
  ('20000000-0000-0000-0000-000000000004', '{U2}', {D} - interval '1 day' + interval '14:30', 'food ', 50, 2.50),
  ('20000000-0000-0000-0000-000000000005', '{U2}', {D} - interval '4 days', 'bus', 5, 'NaN'),
  ('20000000-0000-0000-0000-000000000006', '{U2}', {D} - interval '5 days', 'bus', 5, NULL),
  ('20000000-0000-0000-0000-000000000007', '{U2}', {D} - interval '7 days', 'gift', 5, -7.25),
  ('20000000-0000-0000-0000-000000000008', NULL, {D} - interval '3 days', NULL, 5, 10.00),
  ('20000000-0000-0000-0000-000000000009', '{U1}', {D} - interval '8 days', 'car', 5, 9999999999.99),
  ('20000000-0000-0000-0000-000000000010', '{U1}', {D} - interval '9 days', NULL, 5, 1.10),
  ('20000000-0000-0000-0000-000000000011', '{U2}', {D} - interval '50 days', 'old', 5, 3),
  ('20000000-0000-0000-0000-000000000012', '{U1}', {D} - interval '11 days', 'rent', 5, 3.00),
  ('20000000-0000-0000-0000-000000000013', '{U2}', {D} - interval '13 days', 'misc', 5, 'NaN');
"""

OPTIONS = [CheckOptions(), CheckOptions(sample=2), CheckOptions(day_boundary="user-timezone"),
           CheckOptions(since_seconds=6 * 86400), CheckOptions(budget_days=3)]


def _key(outcome: Outcome, options: CheckOptions) -> tuple[object, ...]:
    # A sample is a set of keys; where the rule found more than the sample holds, which ones is the
    # statement's choice (BUD002 takes the smallest ids in both forms, so its sample is compared always).
    whole = outcome.count <= options.sample or outcome.code == "BUD002"
    return outcome.code, outcome.table, outcome.count, outcome.groups, outcome.column, \
        tuple(sorted(outcome.sample)) if whole else len(outcome.sample)


@pytest.mark.parametrize("options", OPTIONS,
                         ids=lambda o: f"{o.day_boundary}-{o.since_seconds}-{o.budget_days}-{o.sample}")
def test_the_shared_grouping_gives_each_rule_its_own_result(baseline_db: Database, options: CheckOptions) -> None:
    with connect(baseline_db) as conn:
        conn.execute(EDGES.encode())
    with connect(baseline_db) as conn:
        cur = conn.cursor()
        ctx = CheckContext(cur=cur, schema=load_schema(cur), options=options)
        reference = {}
        for rule in transaction_keys.RULES:
            assert rule.evaluate is not None
            (own,) = rule.evaluate(ctx, rule)  # the rule's own, unshared statement (the psql script's)
            reference[rule.code] = _key(own, options)
        if options == CheckOptions():  # the edges are defects of all three rules
            assert reference["DUP003"][2] and reference["BUD001"][2] and reference["BUD002"][2], reference
        for size in (1, 2, 3):
            for chosen in itertools.combinations(transaction_keys.RULES, size):
                shared = transaction_keys.evaluate(ctx, chosen)
                assert {o.code: _key(o, options) for o in shared} == {r.code: reference[r.code] for r in chosen}, \
                    [r.code for r in chosen]
        # The unit restores the session's parallel setting for the passes after it.
        cur.execute("SELECT current_setting('max_parallel_workers_per_gather'), current_setting('enable_hashagg')")
        before = cur.fetchone()
        transaction_keys.evaluate(ctx, transaction_keys.RULES)
        cur.execute("SELECT current_setting('max_parallel_workers_per_gather'), current_setting('enable_hashagg')")
        assert cur.fetchone() == before


def test_budget_rules_share_one_pass_and_dup003_runs_apart(baseline_db: Database) -> None:
    with connect(baseline_db) as conn:
        cur = conn.cursor()
        ctx = CheckContext(cur=cur, schema=load_schema(cur), options=CheckOptions(no_guarantees=True))
        _, passes = plan(ctx, transaction_keys.RULES)
    grouped = sorted(tuple(sorted(r.code for r in p.rules)) for p in passes)
    assert grouped == [("BUD001", "BUD002"), ("DUP003",)]
    assert FAMILY_OF["BUD002"] is transaction_keys.FAMILY
