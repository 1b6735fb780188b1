"""Section 11: the constraints, indexes and triggers that make the defects impossible — or their absence."""

from __future__ import annotations

from dataclasses import replace

from ...database.definitions import check_mismatch, on_cursor
from ...findings import FixSafety, Severity
from .base import Evaluate, Family, Rule, SchemaRule, Script, each_rule
from .context import CheckContext, Outcome, normalised_check
from .expected import CHAIN, CHECKS_0024, EXPECTED_BY_REVISION, SPENT_TRIGGER_FUNCTION

NONE = FixSafety.NONE
MIGRATE = "None by fix: `mita-integrity migrate upgrade head` adds it online (NOT VALID, then VALIDATE)."


def _rule(code: str, name: str, severity: Severity, finds: str, why: str, example: str, message: str,
          hint: str, table: str | None = None, repair: str = MIGRATE, unit: str = "object",
          evaluate: Evaluate | None = None, script: Script | None = None) -> SchemaRule:
    return SchemaRule(code=code, name=name, section=11, severity=severity, finds=finds, why=why, example=example,
                      repair=repair, repair_safety=NONE, table=table, message=message, hint=hint, unit=unit,
                      sql=_SQL[code], evaluate=evaluate or _evaluate, script=script)


_FKS = """FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND con.contype = 'f'"""


def _values(pairs: list[tuple[str, ...]]) -> str:
    return ", ".join("(" + ", ".join("'" + v.replace("'", "''") + "'" for v in pair) + ")" for pair in pairs)


# 0024's CHECKs as pg_get_constraintdef renders them (what Schema.validated_check and the rules' CheckSpecs compare).
CANONICAL_0024: dict[str, str] = {
    "ck_goals_saved_le_target": "saved_amount <= target_amount",
    "ck_goals_progress_le_100": "progress <= 100",
    "ck_goals_target_positive": "target_amount > 0",
    "ck_transactions_amount_nonnegative": "amount >= 0 OR category = ANY (ARRAY['refund', 'income'])",
    "ck_daily_plan_planned_nonnegative": "planned_amount >= 0",
}
# normalised_check in SQL (PostgreSQL's regular expressions: the same casts dropped, then parentheses and spaces).
_NORMALISED_DEF = r"""regexp_replace(regexp_replace(regexp_replace(lower(pg_get_constraintdef(con.oid)),
                      '::(numeric|text|character varying)(\[\])?(?![\w(])', '', 'g'), '[()[:space:]]', '', 'g'),
                      '^check', '')"""
_EXPECTED_0024 = _values(sorted((n, t, normalised_check(CANONICAL_0024[n])) for n, t in CHECKS_0024.items()))
_SCH004_BAD = f"con.oid IS NULL OR NOT con.convalidated OR {_NORMALISED_DEF} <> e.def"


# Each rule's statement (SchemaRule.sql) yields (table, count, sample text[]): one row per table it looked at.
_SQL: dict[str, str] = {
    # Per user_id column: a key from another column of the table (say, created_by) does not protect user_id.
    "SCH001": """SELECT c.relname::text, m.missing::int, CASE WHEN m.missing THEN ARRAY['user_id'] END
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
                                 AND a.atttypid = 'uuid'::regtype
             CROSS JOIN LATERAL (SELECT NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = c.oid
                    AND f.contype = 'f' AND f.confrelid = to_regclass('public.users') AND f.conkey = ARRAY[a.attnum]
                    AND f.confkey = ARRAY[(SELECT u.attnum FROM pg_attribute u
                                            WHERE u.attrelid = f.confrelid AND u.attname = 'id')]) AS missing) m
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'users'
            ORDER BY 1""",
    "SCH002": f"""SELECT c.relname::text, count(*), array_agg(con.conname::text ORDER BY con.conname)
             {_FKS} AND NOT con.convalidated GROUP BY 1 ORDER BY 1""",
    "SCH003": """SELECT 'daily_plan', (NOT EXISTS (SELECT 1 FROM pg_index x
                    WHERE x.indrelid = to_regclass('public.daily_plan') AND x.indisunique AND x.indisvalid
                      AND x.indpred IS NULL AND x.indexprs IS NULL AND x.indnatts = 3
                      AND (x.indnullsnotdistinct OR EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = x.indrelid AND a.attname = 'category' AND a.attnotnull))
                      AND ARRAY(SELECT a.attname::text FROM unnest(x.indkey) k JOIN pg_attribute a
                          ON a.attrelid = x.indrelid AND a.attnum = k) @> ARRAY['user_id', 'date', 'category']))::int,
                  ARRAY(SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                    WHERE x.indrelid = to_regclass('public.daily_plan') AND x.indisunique AND x.indnatts = 3)
            WHERE to_regclass('public.daily_plan') IS NOT NULL""",
    # By definition, not by name: a same-named CHECK (true) rules nothing out. The definition is compared as
    # Schema.validated_check compares it (casts, parentheses, spaces and case aside); the engine's evaluation
    # asks the planner again for any it finds different (database.definitions), as verify does.
    "SCH004": f"""SELECT e.tbl, count(*) FILTER (WHERE {_SCH004_BAD}),
                  array_agg(e.name || CASE WHEN con.oid IS NULL OR NOT con.convalidated THEN ''
                                      ELSE ' (another definition)' END ORDER BY e.name) FILTER (WHERE {_SCH004_BAD})
             FROM (VALUES {_EXPECTED_0024})
                  AS e(name, tbl, def)
             LEFT JOIN pg_constraint con ON con.conname = e.name AND con.contype = 'c'
                  AND con.conrelid = to_regclass('public.' || e.tbl)
            WHERE to_regclass('public.' || e.tbl) IS NOT NULL GROUP BY 1 ORDER BY 1""",
    "SCH005": f"""SELECT 'transactions', (NOT EXISTS (SELECT 1 FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
                    WHERE tg.tgrelid = to_regclass('public.transactions') AND p.proname = '{SPENT_TRIGGER_FUNCTION}'
                      AND NOT tg.tgisinternal AND tg.tgenabled IN ('O', 'A')))::int,
                  ARRAY(SELECT tg.tgname::text || CASE tg.tgenabled WHEN 'D' THEN ' (disabled)'
                                                    WHEN 'R' THEN ' (fires only on replicas)' ELSE '' END
                    FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
                    WHERE tg.tgrelid = to_regclass('public.transactions') AND p.proname = '{SPENT_TRIGGER_FUNCTION}')
            WHERE to_regclass('public.transactions') IS NOT NULL""",
    # A partial index cannot serve the lookups of a cascade (they ask for every row of the key), nor can an
    # invalid one: only a valid index without a predicate that leads with the column counts.
    "SCH006": f"""SELECT c.relname::text,
                  count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = con.conrelid
                                                      AND x.indkey[0] = con.conkey[1] AND x.indpred IS NULL
                                                      AND x.indisvalid)),
                  array_agg(a.attname::text ORDER BY a.attname) FILTER (WHERE NOT EXISTS (SELECT 1 FROM pg_index x
                                 WHERE x.indrelid = con.conrelid AND x.indkey[0] = con.conkey[1]
                                   AND x.indpred IS NULL AND x.indisvalid))
             {_FKS.replace("WHERE", "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]"
                                    " WHERE", 1)} GROUP BY 1 ORDER BY 1""",
    "SCH007": """SELECT t.relname::text, count(*), array_agg(i.relname::text ORDER BY i.relname)
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = 'public' AND NOT x.indisvalid GROUP BY 1 ORDER BY 1""",
    "SCH008": f"""SELECT c.relname::text, count(*) FILTER (WHERE con.confdeltype IN ('a', 'r')),
                  array_agg(con.conname::text ORDER BY con.conname) FILTER (WHERE con.confdeltype IN ('a', 'r'))
             {_FKS} AND con.confrelid = to_regclass('public.users') GROUP BY 1 ORDER BY 1""",
    "SCH009": f"""WITH chain(pos, rev) AS (VALUES {_values([(str(i), r) for i, r in enumerate(CHAIN)])}),
             expected(rev, item) AS (VALUES {_values([(r, i) for r, items in EXPECTED_BY_REVISION.items()
                                                       for i in items])}),
             versions(version_num) AS (:mita_versions),
             applied AS (SELECT DISTINCT c2.rev FROM versions v JOIN chain c1 ON c1.rev = v.version_num
                           JOIN chain c2 ON c2.pos::int <= c1.pos::int),
             missing AS (SELECT e.rev || ': ' || e.item AS what FROM expected e JOIN applied USING (rev)
                          WHERE CASE
                            WHEN e.item LIKE 'trigger:%' THEN NOT EXISTS (SELECT 1 FROM pg_trigger tg
                                 JOIN pg_proc p ON p.oid = tg.tgfoid WHERE p.proname = substr(e.item, 9)
                                 AND NOT tg.tgisinternal)
                            WHEN e.item LIKE '%.%' THEN NOT EXISTS (SELECT 1 FROM pg_attribute a
                                 WHERE a.attrelid = to_regclass('public.' || split_part(e.item, '.', 1))
                                 AND a.attname = split_part(e.item, '.', 2) AND NOT a.attisdropped)
                            ELSE NOT EXISTS (SELECT 1 FROM pg_constraint con
                                 JOIN pg_namespace n ON n.oid = con.connamespace
                                 WHERE n.nspname = 'public' AND con.conname = e.item) END)
           SELECT 'alembic_version', (SELECT count(*) FROM missing), ARRAY(SELECT what FROM missing ORDER BY 1)
            WHERE EXISTS (SELECT 1 FROM versions)""",
}


# The version tables SCH009 reads: the tool's own (standalone), and the application's (an exported chain, or
# a database an earlier mita-integrity moved). Only those that exist and can be read are named in the query,
# which SCH009's statement takes in place of :mita_versions (psql: a variable set by \gset).
VERSIONS_SQL = """SELECT coalesce(string_agg('SELECT version_num::text FROM ' || t.tbl, ' UNION ALL '),
                         'SELECT NULL::text WHERE false') AS mita_versions
  FROM unnest(ARRAY['public.alembic_version', 'integrity.alembic_version']) AS t(tbl)
 WHERE CASE WHEN NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = split_part(t.tbl, '.', 1)
                              AND has_schema_privilege(n.oid, 'USAGE')) THEN false
            WHEN to_regclass(t.tbl) IS NULL THEN false
            ELSE has_table_privilege(t.tbl, 'SELECT') END"""
_NO_VERSIONS = "SELECT NULL::text WHERE false"


def _evaluate(ctx: CheckContext, rule: Rule, statement: str | None = None) -> list[Outcome]:
    """Gives the outcomes of a schema rule (catalog queries only: no table is scanned)."""
    assert isinstance(rule, SchemaRule)
    ctx.cur.execute(statement or rule.sql)
    rows = ctx.cur.fetchall()
    if not rows:
        return [Outcome(rule.code, "(schema)")]
    return [Outcome(rule.code, table, int(count or 0), sample=tuple(sample or ())[: max(ctx.options.sample, 0)])
            for table, count, sample in rows]


# The suffix of a sample whose constraint says something else (report/next_steps.py words its hint by it).
OTHER_DEFINITION = " (another definition)"


def _evaluate_checks(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    """SCH004: a definition that reads differently as text is asked of the planner again (EXPLAIN, as verify
    does): `0 <= amount` is the migration's constraint, CHECK (true) is not."""
    assert isinstance(rule, SchemaRule)
    ctx.cur.execute(rule.sql)
    rows = ctx.cur.fetchall()
    out = []
    for table, _count, sample in rows:
        found = [s for s in sample or ()
                 if not s.endswith(OTHER_DEFINITION)
                 or check_mismatch(on_cursor(ctx.cur), s.removesuffix(OTHER_DEFINITION)) is not None]
        out.append(Outcome(rule.code, table, len(found), sample=tuple(found)[: max(ctx.options.sample, 0)]))
    return out or [Outcome(rule.code, "(schema)")]


def _evaluate_versions(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    """SCH009: names the readable version tables in its statement, then evaluates it."""
    assert isinstance(rule, SchemaRule)
    ctx.cur.execute(VERSIONS_SQL)
    row = ctx.cur.fetchone()
    return _evaluate(ctx, rule, rule.sql.replace(":mita_versions", str(row[0]) if row else _NO_VERSIONS))


def _versions_script(ctx: CheckContext, rule: Rule) -> str:
    r"""SCH009's psql form: \gset names the readable version tables in :mita_versions, then the statement."""
    assert isinstance(rule, SchemaRule)
    return f"{VERSIONS_SQL} \\gset\n" + SchemaRule.script_sql(replace(rule, script=None), ctx)


RULES: tuple[Rule, ...] = (
    _rule("SCH001", "missing-user-fk", Severity.HIGH, "tables with a uuid user_id and no foreign key to users.",
          "Without the FK nothing stops orphans, and deleting a user leaves their rows behind.",
          "daily_plan.user_id has no REFERENCES users(id)", "no foreign key to users",
          "`mita-integrity migrate upgrade head` (0022, 0026) adds it online"),
    _rule("SCH002", "fk-not-validated", Severity.HIGH, "foreign keys that exist but are NOT VALID.",
          "New rows are checked, old ones are not: orphans from before may still be there.",
          "fk_daily_plan_user_id … NOT VALID", "foreign key is NOT VALID",
          "`mita-integrity migrate validate` once the violators are resolved"),
    _rule("SCH003", "no-daily-plan-unique-key", Severity.HIGH,
          "daily_plan without a unique constraint on (user_id, date, category) treating NULL categories as equal.",
          "Nothing stops duplicate calendar entries; a plain UNIQUE lets NULL categories repeat.",
          "no uq_daily_plan_user_date_category", "no unique key on (user_id, date, category)",
          "`mita-integrity migrate upgrade head` (0023) adds it", table="daily_plan"),
    _rule("SCH004", "missing-check-constraint", Severity.MEDIUM,
          "the CHECK constraints of migration 0024 that are missing, not validated, or say something else "
          "under their name.",
          "Without them impossible amounts and goals can be written again at any time.",
          "ck_goals_saved_le_target absent", "expected CHECK constraint missing, NOT VALID or redefined",
          "`mita-integrity migrate upgrade head` (0024), then `migrate validate`", evaluate=_evaluate_checks),
    _rule("SCH005", "spent-trigger-missing", Severity.MEDIUM,
          "the transactions trigger that keeps daily_plan.spent_amount (0025) missing or disabled.",
          "spent_amount then depends on application code remembering every update: it drifts (BUD001).",
          "no trigger calling update_daily_plan_spent()", "spent_amount trigger missing or disabled",
          "`mita-integrity migrate upgrade head` (0025) installs it", table="transactions"),
    _rule("SCH006", "fk-without-index", Severity.LOW, "foreign key columns with no index leading with them.",
          "Deleting a parent row (a user) scans the whole child table per row: cascades crawl and lock.",
          "ai_analysis_snapshots.user_id has no index", "foreign key column without an index",
          "CREATE INDEX CONCURRENTLY on the column",
          repair="None by fix: CREATE INDEX CONCURRENTLY ix_<table>_<column> ON <table> (<column>)."),
    _rule("SCH007", "invalid-index", Severity.HIGH, "indexes marked invalid (a failed CREATE INDEX CONCURRENTLY).",
          "An invalid index is maintained on every write but never used; an invalid unique index enforces "
          "nothing.", "uq_daily_plan_user_date_category with indisvalid = false", "invalid index",
          "`mita-integrity migrate upgrade head` drops and rebuilds the migrations' own, even at head; any other: "
          "DROP INDEX CONCURRENTLY it, then CREATE INDEX CONCURRENTLY it again",
          repair="None by fix: drop and rebuild it concurrently (`migrate upgrade head` does for the migrations' "
                 "indexes, even at head)."),
    _rule("SCH008", "user-fk-blocks-deletion", Severity.HIGH,
          "foreign keys to users with NO ACTION or RESTRICT.",
          "Deleting a user fails while such rows exist: the right to be forgotten cannot be honoured.",
          "feature_usage_logs_user_id_fkey … (no ON DELETE)", "foreign key to users blocks deletion",
          "`mita-integrity migrate upgrade head` (0026) re-creates it ON DELETE CASCADE"),
    _rule("SCH009", "stamped-not-run", Severity.CRITICAL,
          "migrations that a version table (the tool's integrity.alembic_version, or the application's "
          "alembic_version when the chain was exported into it) says ran but whose constraints are absent "
          "(stamped, not run).",
          "Production was once stamped past a migration that never ran: everyone believed in FKs that did not "
          "exist.", "alembic_version = 0022… but no fk_daily_plan_user_id", "migration recorded but not applied",
          "stamp back to the last applied revision, then `mita-integrity migrate upgrade head`",
          repair="None by fix: `mita-integrity migrate stamp <the last revision really applied>`, then "
                 "`mita-integrity migrate upgrade head` runs the missing migrations (each does only what is absent).",
          evaluate=_evaluate_versions, script=_versions_script),
)



FAMILY = Family("schema", RULES, each_rule)
