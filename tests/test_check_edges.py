"""`check` at the edges of the data (issue 14, items 3–5): odd tables, exit codes, blanks and NULLs.

Each test sets up a database the way a hostile or merely unusual schema would, and compares the result with
what independent SQL says is there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mita_integrity.check.run import CheckRequest, run_check
from mita_integrity.cli import main
from mita_integrity.database.connection import Database, connect
from mita_integrity.database.urls import build_url
from mita_integrity.findings import Result

USER = "00000000-0000-0000-0000-000000000001"
DEAD = "dead0000-0000-0000-0000-000000000001"


def _execute(db: Database, statement: str) -> None:
    with connect(db) as conn:
        conn.execute(statement.encode())


def _results(db: Database, select: str, **options: Any) -> dict[str, Result]:
    report = run_check(db, CheckRequest(select=[select], **options))
    return {r.table: r for r in report.results if r.code == select}


def test_a_partitioned_table_is_counted_once(baseline_db: Database) -> None:
    """14.3: REF010 gave parent 2 + partition 1 + partition 1 for 2 orphans."""
    _execute(baseline_db, f"""
CREATE TABLE part_logs (id uuid NOT NULL, user_id uuid, created_at timestamptz NOT NULL)
  PARTITION BY RANGE (created_at);
CREATE TABLE part_logs_2025 PARTITION OF part_logs FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE part_logs_2026 PARTITION OF part_logs FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO part_logs VALUES (gen_random_uuid(), '{DEAD}', '2025-06-01'), (gen_random_uuid(), '{DEAD}', '2026-06-01');
CREATE TABLE inh_parent (id uuid PRIMARY KEY, user_id uuid, deleted_at timestamptz);
CREATE TABLE inh_child () INHERITS (inh_parent);
INSERT INTO inh_child VALUES (gen_random_uuid(), '{DEAD}', now());
""")
    ref010 = _results(baseline_db, "REF010")
    assert (ref010["part_logs"].status.value, ref010["part_logs"].count) == ("fail", 2)
    assert (ref010["inh_parent"].status.value, ref010["inh_parent"].count) == ("fail", 1)
    assert not {"part_logs_2025", "part_logs_2026", "inh_child"} & set(ref010)
    sdl001 = _results(baseline_db, "SDL001")
    assert sdl001["inh_parent"].count == 1 and "inh_child" not in sdl001


def test_tables_without_a_single_id_are_checked_with_their_own_key(baseline_db: Database) -> None:
    """14.3: no `id` column, a composite key, no key at all, a name with a dot: each a normal result."""
    _execute(baseline_db, f"""
CREATE TABLE no_id_logs (log_key text PRIMARY KEY, user_id uuid);
CREATE TABLE pair_logs (a int, b int, user_id uuid, PRIMARY KEY (a, b));
CREATE TABLE keyless_logs (user_id uuid, note text);
CREATE TABLE "odd.logs" (id int PRIMARY KEY, user_id uuid);
INSERT INTO no_id_logs VALUES ('k1', '{DEAD}');
INSERT INTO pair_logs VALUES (1, 2, '{DEAD}');
INSERT INTO keyless_logs VALUES ('{DEAD}', 'x');
INSERT INTO "odd.logs" VALUES (7, '{DEAD}');
""")
    ref010 = _results(baseline_db, "REF010")
    seen = {t: (ref010[t].status.value, ref010[t].count, ref010[t].sample)
            for t in ("no_id_logs", "pair_logs", "keyless_logs", "odd.logs")}
    assert seen == {
        "no_id_logs": ("fail", 1, ("k1",)),
        "pair_logs": ("fail", 1, ("(1,2)",)),
        "keyless_logs": ("fail", 1, ("(0,1)",)),
        "odd.logs": ("fail", 1, ("7",)),
    }


def test_one_locked_table_is_that_tables_error_and_the_run_exits_3(baseline_db: Database,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """14.3 and 14.4: REF011 turned into one `(schema)` error hiding every table; rc was 0 with errors."""
    _execute(baseline_db, "INSERT INTO expenses (id, user_id, action, amount, date) VALUES (1, '42', 'add', 5, "
                          "'2026-01-11'); INSERT INTO user_answers (id, user_id, question_key) VALUES (1, 'x', 'q')")
    url = build_url(baseline_db.parsed.params, mask_password=False)
    with connect(baseline_db) as holder:
        holder.execute("LOCK TABLE user_profiles IN ACCESS EXCLUSIVE MODE")
        code = main(["--db", url, "check", "--format", "json", "--select", "REF011", "--lock-timeout", "200ms"])
        holder.rollback()
    report = json.loads(capsys.readouterr().out)
    by_table = {r["table"]: (r["status"], r["count"]) for r in report["results"]}
    assert by_table["expenses"] == ("fail", 1) and by_table["user_answers"] == ("fail", 1)
    assert by_table["user_profiles"][0] == "error"
    assert code == 3


def test_ref011_under_since_is_skipped_where_a_table_has_no_creation_time(baseline_db: Database) -> None:
    """14.4: REF011 said `pass` over tables it could not window, where the row rules say `skipped`."""
    _execute(baseline_db, "CREATE TABLE legacy_notes (id int PRIMARY KEY, user_id text);"
                          "INSERT INTO legacy_notes VALUES (1, 'abc')")
    ref011 = _results(baseline_db, "REF011", since="7d")
    assert ref011["legacy_notes"].status.value == "skipped"
    assert "creation time" in (ref011["legacy_notes"].reason or "")


@pytest.mark.parametrize("code,table,column", [("NUL001", "users", "email"), ("NUL008", "goals", "title")])
def test_blank_is_whitespace_of_any_kind(baseline_db: Database, code: str, table: str, column: str) -> None:
    """14.5: a value of tabs and newlines is as blank as one of spaces."""
    if table == "users":
        _execute(baseline_db, f"INSERT INTO users (id, email, password_hash) VALUES ('{USER}', E'\\t\\n ', 'h')")
    else:
        _execute(baseline_db, f"""
INSERT INTO users (id, email, password_hash) VALUES ('{USER}', 'ann@example.com', 'h');
INSERT INTO goals (id, user_id, title, target_amount) VALUES (gen_random_uuid(), '{USER}', E'\\t', 100);
""")
    result = _results(baseline_db, code)[table]
    assert (result.status.value, result.count, result.column) == ("fail", 1, column)


def test_dup001_ignores_surrounding_whitespace_of_any_kind(baseline_db: Database) -> None:
    _execute(baseline_db, """
INSERT INTO users (id, email, password_hash) VALUES
  ('00000000-0000-0000-0000-000000000001', 'ann@x.org', 'h'),
  ('00000000-0000-0000-0000-000000000002', E'Ann@x.org\\t', 'h'),
  ('00000000-0000-0000-0000-000000000003', E'\\t', 'h'),
  ('00000000-0000-0000-0000-000000000004', E'\\n', 'h');
""")
    result = _results(baseline_db, "DUP001")["users"]
    assert (result.count, result.groups) == (1, 1)


def test_dup003_treats_a_null_user_like_any_other_value(baseline_db: Database) -> None:
    """14.5: two identical transactions of no user at the same second are a duplicate too."""
    _execute(baseline_db, """
ALTER TABLE transactions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE transactions DROP CONSTRAINT IF EXISTS fk_transactions_user_id;
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at) VALUES
  (gen_random_uuid(), NULL, 'food', 3, 'USD', '2026-01-11 12:00:00.1+00'),
  (gen_random_uuid(), NULL, 'food', 3, 'USD', '2026-01-11 12:00:00.7+00');
""")
    result = _results(baseline_db, "DUP003")["transactions"]
    assert (result.count, result.groups) == (1, 1)


def test_ref011_ref001_and_ref010_agree_on_null(baseline_db: Database) -> None:
    """14.5: a NULL user_id is the NUL rules' business: no REF rule counts it as an unknown user."""
    _execute(baseline_db, """
ALTER TABLE transactions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE transactions DROP CONSTRAINT IF EXISTS fk_transactions_user_id;
ALTER TABLE moods ALTER COLUMN user_id DROP NOT NULL;
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at) VALUES
  (gen_random_uuid(), NULL, 'food', 3, 'USD', now());
INSERT INTO moods (id, user_id, date, mood) VALUES (gen_random_uuid(), NULL, '2026-01-11', 'ok');
ALTER TABLE user_answers ALTER COLUMN user_id DROP NOT NULL;
INSERT INTO user_answers (id, user_id, question_key) VALUES (1, NULL, 'q1');
""")
    assert _results(baseline_db, "REF001")["transactions"].count == 0
    assert _results(baseline_db, "REF010")["moods"].count == 0
    assert _results(baseline_db, "REF011")["user_answers"].count == 0


def test_no_guarantees_is_in_the_report(baseline_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    """12.9: rows written as a replica bypass the FK; --no-guarantees scans and the JSON says it did."""
    with connect(baseline_db) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"INSERT INTO habit_completions (id, habit_id, user_id) VALUES (gen_random_uuid(), "
                     f"gen_random_uuid(), '{DEAD}')")
    url = build_url(baseline_db.parsed.params, mask_password=False)
    main(["--db", url, "check", "--format", "json", "--select", "REF007"])
    trusting = json.loads(capsys.readouterr().out)
    main(["--db", url, "check", "--format", "json", "--select", "REF007", "--no-guarantees"])
    scanning = json.loads(capsys.readouterr().out)
    assert [(r["status"], r["count"]) for r in trusting["results"]] == [("guaranteed", 0)]
    assert [(r["status"], r["count"]) for r in scanning["results"]] == [("fail", 1)]
    assert scanning["no_guarantees"] is True and trusting["no_guarantees"] is False


SHADOW = """
DO $$ BEGIN EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', current_user); END $$;
DO $$ BEGIN EXECUTE format('CREATE TABLE %I.{table} (LIKE public.{table})', current_user); END $$;
"""
ANN = f"INSERT INTO public.users (id, email, password_hash) VALUES ('{USER}', 'ann@example.com', 'h');"
TX = "INSERT INTO public.transactions (id, user_id, category, amount, currency, spent_at) VALUES "
# issue 14.1: a table of the same name in the "$user" schema, earlier on the default search_path
SHADOWED = {
    "REF001": ("ALTER TABLE transactions DROP CONSTRAINT IF EXISTS fk_transactions_user_id;"
               + SHADOW.format(table="transactions")
               + TX + f"('10000000-0000-0000-0000-000000000001', '{DEAD}', 'food', 1, 'USD', now());",
               "transactions", 1),
    "REF003": (SHADOW.format(table="users") + ANN
               + "INSERT INTO public.daily_plan (id, user_id, date, category) VALUES "
                 f"('30000000-0000-0000-0000-000000000001', '{USER}', '2026-01-11', 'food');",
               "daily_plan", 0),
    "NUL004": (SHADOW.format(table="transactions") + ANN
               + TX + f"('10000000-0000-0000-0000-000000000001', '{USER}', E'\\t \\n', 1, 'USD', now()), "
                      f"('10000000-0000-0000-0000-000000000002', '{USER}', 'food', 1, 'USD', now());",
               "transactions", 1),
}


@pytest.mark.parametrize("code", sorted(SHADOWED))
def test_a_shadow_table_on_search_path_is_not_what_is_checked(baseline_db: Database, code: str) -> None:
    """14.1: unqualified names read the empty shadow table (pass) or a shadow users (every row an orphan)."""
    setup, table, count = SHADOWED[code]
    _execute(baseline_db, setup)
    result = _results(baseline_db, code)[table]
    assert (result.status.value, result.count) == ("fail" if count else "pass", count)


def test_a_key_on_a_table_with_children_guarantees_nothing(baseline_db: Database) -> None:
    """An inheritance child has no copy of a foreign key or unique key, and a partition's copy of a foreign key
    can have its triggers disabled: the parent's key must not make REF001, REF010 or DUP002 `guaranteed`."""
    _execute(baseline_db, f"""
{ANN}
ALTER TABLE transactions ADD CONSTRAINT fk_transactions_user_id FOREIGN KEY (user_id) REFERENCES users (id);
CREATE TABLE transactions_2019 () INHERITS (transactions);
{TX.replace("public.transactions", "transactions_2019")}('10000000-0000-0000-0000-000000000001', '{DEAD}', 'food', 1,
  'USD', now());
CREATE TABLE part_logs (id uuid NOT NULL, user_id uuid REFERENCES users (id), created_at timestamptz NOT NULL)
  PARTITION BY RANGE (created_at);
CREATE TABLE part_logs_2025 PARTITION OF part_logs FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
ALTER TABLE part_logs_2025 DISABLE TRIGGER ALL;
INSERT INTO part_logs VALUES (gen_random_uuid(), '{DEAD}', '2025-06-01');
ALTER TABLE daily_plan
  ADD CONSTRAINT uq_daily_plan_user_date_category UNIQUE NULLS NOT DISTINCT (user_id, date, category),
  ADD CONSTRAINT ck_daily_plan_date_midnight CHECK (date = date_trunc('day', date, 'UTC'));
CREATE TABLE daily_plan_2019 () INHERITS (daily_plan);
INSERT INTO daily_plan_2019 (id, user_id, date, category) VALUES
  (gen_random_uuid(), '{USER}', '2019-01-11', 'food'), (gen_random_uuid(), '{USER}', '2019-01-11', 'food');
""")
    assert (_results(baseline_db, "REF001")["transactions"].status.value,
            _results(baseline_db, "REF001")["transactions"].count) == ("fail", 1)
    assert (_results(baseline_db, "REF010")["part_logs"].status.value,
            _results(baseline_db, "REF010")["part_logs"].count) == ("fail", 1)
    assert (_results(baseline_db, "DUP002")["daily_plan"].status.value,
            _results(baseline_db, "DUP002")["daily_plan"].count) == ("fail", 1)


def test_a_plain_unique_key_with_a_nullable_user_guarantees_no_dup002(baseline_db: Database) -> None:
    """DUP002 counts rows with a NULL user_id as one key; a UNIQUE without NULLS NOT DISTINCT lets them in."""
    _execute(baseline_db, """
ALTER TABLE daily_plan ALTER COLUMN user_id DROP NOT NULL, ALTER COLUMN category SET NOT NULL,
  ADD CONSTRAINT uq_daily_plan_user_date_category UNIQUE (user_id, date, category),
  ADD CONSTRAINT ck_daily_plan_date_midnight CHECK (date = date_trunc('day', date, 'UTC'));
INSERT INTO daily_plan (id, user_id, date, category) VALUES
  (gen_random_uuid(), NULL, '2026-01-11', 'food'), (gen_random_uuid(), NULL, '2026-01-11', 'food');
""")
    result = _results(baseline_db, "DUP002")["daily_plan"]
    assert (result.status.value, result.count) == ("fail", 1)


def test_a_check_through_an_integer_cast_guarantees_nothing(baseline_db: Database) -> None:
    """A CHECK comparing rounded values passes 10.4 saved of a target of 10 and -0.4 planned: GOL003 and AMT005
    must scan, not read the CHECK as the expected one with its casts stripped."""
    _execute(baseline_db, f"""
{ANN}
ALTER TABLE goals ADD CONSTRAINT ck_goals_saved_le_target CHECK (saved_amount::integer <= target_amount::integer);
ALTER TABLE daily_plan ADD CONSTRAINT ck_daily_plan_planned_nonnegative CHECK (planned_amount::integer >= 0);
INSERT INTO goals (id, user_id, title, target_amount, saved_amount) VALUES
  ('20000000-0000-0000-0000-000000000001', '{USER}', 'g1', 10, 10.4);
INSERT INTO daily_plan (id, user_id, date, category, planned_amount) VALUES
  ('30000000-0000-0000-0000-000000000001', '{USER}', '2026-01-11', 'food', -0.4);
""")
    for code, table in (("GOL003", "goals"), ("AMT005", "daily_plan")):
        result = _results(baseline_db, code)[table]
        assert (code, result.status.value, result.count) == (code, "fail", 1)


def test_a_childs_own_user_id_is_checked_when_its_parent_has_none(baseline_db: Database) -> None:
    """An inheritance child is left to its parent's scan only for a column the parent has: a user_id or
    deleted_at of the child's own was read by no rule (REF010, SDL001, verify's orphans all silent)."""
    _execute(baseline_db, f"""
CREATE TABLE audit_base (id uuid PRIMARY KEY, created_at timestamptz DEFAULT now());
CREATE TABLE user_audit (user_id uuid, deleted_at timestamptz) INHERITS (audit_base);
INSERT INTO user_audit (id, user_id, deleted_at) VALUES (gen_random_uuid(), '{DEAD}', NULL),
  (gen_random_uuid(), '{DEAD}', now());
""")
    assert _results(baseline_db, "REF010")["user_audit"].count == 2
    assert _results(baseline_db, "SDL001")["user_audit"].count == 1
