"""Section 4: orphans — rows whose user, habit or goal does not exist."""

from __future__ import annotations

from dataclasses import replace

import psycopg

from ...database.errors import is_connection_lost
from ...findings import FixSafety, Severity, Status
from .base import Family, Join, QueryRule, RowFix, RowRule, Rule, each_rule, literal, per_table_script, rel
from .context import CheckContext, Outcome, Schema
from .sampling import count_and_sample

C, H, M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM
UUID_TEXT = "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"
SAFE_DELETE = ("Safe: archive the row, then delete it (a row of nobody cannot be shown or owned; "
               "undo restores it). Rows that reference it through an ON DELETE CASCADE or SET NULL foreign key "
               "are archived too, before the database touches them.")


def _orphan(code: str, table: str, column: str, parent: str, severity: Severity, *, why: str,
            repair: str = SAFE_DELETE, action: str = "archives and removes them", fix: RowFix | None = None
            ) -> RowRule:
    alias = f"{code.lower()}_p"  # the rule's own name for its parent: no other rule's join can answer for it
    return RowRule(
        code=code, name=f"orphan-{table}-{column}".replace("_", "-"), section=4, severity=severity,
        finds=f"{table} rows whose {column} names no {parent.removesuffix('s')}.",
        why=why, example=f"{table}.{column} = 6f1c…e2 while no {parent} has that id",
        repair=repair, repair_safety=FixSafety.SAFE, table=table, column=column, requires=(parent,),
        message=f"{column} names no {parent.removesuffix('s')}",
        hint=f"`mita-integrity fix --apply --select {code}` {action}; the FK migration prevents more",
        predicate=f"t.{column} IS NOT NULL AND {alias}.id IS NULL",
        joins=(Join(alias, parent, f"{alias}.id = t.{column}"),), fk=(column, parent), fix=fix or RowFix(),
    )


SPECIFIC = (
    _orphan("REF001", "transactions", "user_id", "users", C,
            why="Spending of a user who no longer exists: it cannot be shown, deleted by the user, or "
                "counted in any budget; migration 0026's foreign key cannot be added while it exists."),
    # A goal's transactions are unlinked (REF008) before the goal goes.
    _orphan("REF002", "goals", "user_id", "users", C, why="A goal of nobody; its savings are unreachable.",
            fix=RowFix(after=("REF008",))),
    _orphan("REF003", "daily_plan", "user_id", "users", C,
            why="Calendar rows of a deleted user; migration 0022's foreign key cannot be added while they exist."),
    _orphan("REF004", "subscriptions", "user_id", "users", C,
            why="A paid subscription of nobody: billing reports count it, and 0022's foreign key fails on it "
                "(soft-deleting it does not help: the FK still sees it)."),
    # Completions go first (REF006, REF007): a habit's removal would otherwise cascade to them unarchived.
    _orphan("REF005", "habits", "user_id", "users", H, why="Habits of a deleted user keep sending reminders.",
            fix=RowFix(after=("REF006", "REF007"))),
    _orphan("REF006", "habit_completions", "habit_id", "habits", H,
            why="A completion of a habit that no longer exists inflates streaks."),
    _orphan("REF007", "habit_completions", "user_id", "users", H, why="A completion of a deleted user."),
    _orphan("REF008", "transactions", "goal_id", "goals", H,
            why="A transaction saved towards a goal that does not exist: the goal's savings are wrong.",
            repair="Safe: set goal_id to NULL (the transaction stays; archived first).",
            action="archives them and sets goal_id to NULL", fix=RowFix(assignments="goal_id = NULL")),
)

REF010 = replace(
    _orphan("REF010", "*", "user_id", "users", H,
            why="Any user-owned row of a deleted user: personal data that should be gone (right to be "
                "forgotten), and a foreign key that cannot be added."),
    table=None, name="orphan-user-rows", finds="rows of any other table whose uuid user_id names no user.",
    example="moods.user_id = 6f1c…e2 while no users row has that id",
)

REF011 = QueryRule(
    code="REF011", name="bad-varchar-user-id", section=4, severity=M,
    finds="varchar user_id values (expenses, user_answers, user_profiles) that are not a UUID or name no user.",
    why="These legacy tables keep user_id as text: nothing stops typos, numeric ids or ids of deleted users.",
    example="expenses.user_id = '42' or 'abc'",
    repair="None: which user was meant needs a person; then convert the column to uuid with an FK.",
    repair_safety=FixSafety.NONE, table=None, column="user_id", requires=("users",),
    message="user_id is not a user's UUID", hint="map each value to a real user, or archive the row",
    per_table=True,
)

_SPECIFIC_TABLES: set[str] = {r.table for r in SPECIFIC if r.table and r.column == "user_id"}
ORPHANS = tuple(r.code for r in SPECIFIC) + ("REF010",)  # every orphan repair: the others run after them
def user_id_tables(schema: Schema, *, uuid: bool) -> list[str]:
    """Gives the tables with a user_id column of type uuid (or of a text type), users excluded."""
    out = []
    for table, cols in sorted(schema.columns.items()):
        typ = cols.get("user_id", ("", False))[0]
        if table == "users" or not typ or schema.read_with_parent(table, "user_id"):  # read with its parent's
            continue
        if (typ == "uuid") == uuid and (uuid or typ.startswith(("character varying", "varchar", "text", "char"))):
            out.append(table)
    return out


def expand(schema: Schema) -> tuple[Rule, ...]:
    """Gives REF010 once per uuid user_id table that no specific REF rule covers."""
    return tuple(replace(REF010, table=t) for t in user_id_tables(schema, uuid=True) if t not in _SPECIFIC_TABLES)


# A text user_id must be a UUID in canonical form that names a user (checked only once it is a UUID,
# because casting anything else to uuid would fail the whole query).
# A NULL user_id is no one's, as for REF001 and REF010 (NUL rules speak of missing values), so not counted.
REF011_WHERE = (f"t.user_id IS NOT NULL AND CASE WHEN t.user_id ~ {UUID_TEXT} "
                f"THEN NOT EXISTS (SELECT 1 FROM {rel('users')} u WHERE u.id = t.user_id::uuid) ELSE true END")


def _ref010_script(ctx: CheckContext, rule: Rule) -> str:
    specific = ", ".join(literal(t) for t in sorted(_SPECIFIC_TABLES))
    return per_table_script(rule.code, "t.user_id IS NOT NULL AND NOT EXISTS "
                                       "(SELECT 1 FROM public.users p WHERE p.id = t.user_id)",
                            "user_id", f"a.atttypid = 'uuid'::regtype AND c.relname NOT IN ({specific})")


def _ref011_script(ctx: CheckContext, rule: Rule) -> str:
    return per_table_script(rule.code, REF011_WHERE, "user_id",
                            "a.atttypid IN ('character varying'::regtype, 'text'::regtype)")


def _ref011(ctx: CheckContext, rule: Rule) -> list[Outcome]:
    """Gives REF011's outcome per text user_id table; one table that cannot be read is that table's error only."""
    out = []
    for table in user_id_tables(ctx.schema, uuid=False):
        where = REF011_WHERE
        since = ctx.since_filter(table)
        if since == "false":  # like the row rules: a table without a creation time has no window
            out.append(Outcome("REF011", table, status=Status.SKIPPED, column="user_id",
                               reason=f"--since: {table} has no creation time"))
            continue
        if since:
            where += f" AND {since}"
        try:
            with ctx.cur.connection.transaction():  # a savepoint: the other tables keep their results
                count, sample = count_and_sample(ctx, table, where)
        except psycopg.Error as exc:
            if is_connection_lost(exc, ctx.cur.connection) or exc.sqlstate in ("40001", "57P04"):
                raise
            out.append(Outcome("REF011", table, status=Status.ERROR, column="user_id",
                               reason=(str(exc).strip().splitlines() or [type(exc).__name__])[0]))
            continue
        out.append(Outcome("REF011", table, count, sample=sample, column="user_id"))
    return out


REF010 = replace(REF010, script=_ref010_script)
REF011 = replace(REF011, evaluate=_ref011, script=_ref011_script)
RULES: tuple[Rule, ...] = (*SPECIFIC, REF010, REF011)
FAMILY = Family("references", RULES, each_rule, expand)
