"""The baseline migration builds exactly the pre-0022 production schema; the models match; it undoes cleanly.

"Exactly" is judged by `catalog.snapshot`, which reads PostgreSQL's own deparsed definitions, so the
squashed baseline and the reference's ALTER history compare equal only if the server sees one schema.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mita_integrity.database.connection import Database, connect
from mita_integrity.database.errors import UsageError
from mita_integrity.database.models import metadata
from mita_integrity.migration import command as migrate
from tests.support import schema_snapshot as catalog

if TYPE_CHECKING:
    from conftest import PgServer

REFERENCE_SQL = Path(__file__).resolve().parent / "data" / "mita_schema_pre0022.sql"
BASELINE_FILE_NAME = "0021_add_habit_completions_table"


@pytest.fixture
def new_db(pg: PgServer) -> Iterator[Callable[[], Database]]:
    """Gives a factory of fresh empty databases, all dropped at the end of the test."""
    names: list[str] = []

    def make() -> Database:
        names.append(f"mita_t_{uuid.uuid4().hex[:12]}")
        return pg.create_database(names[-1])

    yield make
    for name in names:
        pg.drop_database(name)


def snapshot_of(db: Database) -> dict[str, Any]:
    """Gives the catalog snapshot of the database's public schema."""
    with connect(db) as conn:
        return catalog.snapshot(conn)


def load_reference(db: Database) -> None:
    # The reference carries its own BEGIN/COMMIT, hence autocommit; one string, as psql would send it.
    with connect(db, autocommit=True) as conn:
        conn.execute(REFERENCE_SQL.read_text(encoding="utf-8"))


def without_code_objects(snap: dict[str, Any]) -> dict[str, Any]:
    """Gives the snapshot without functions and triggers, which SQLAlchemy models cannot declare."""
    tables = {
        name: {k: v for k, v in table.items() if k != "triggers"} for name, table in snap["tables"].items()
    }
    return {"tables": tables, "sequences": snap["sequences"]}


def test_baseline_migration_equals_reference_schema(new_db: Callable[[], Database]) -> None:
    migrated, reference = new_db(), new_db()
    result = migrate.upgrade(migrated, migrate.BASELINE)
    load_reference(reference)

    ours, theirs = snapshot_of(migrated), snapshot_of(reference)
    assert result.to_revision == migrate.BASELINE
    assert catalog.diff(ours, theirs, labels=("migration", "reference")) == []
    assert len(ours["tables"]) == 26
    assert set(ours["sequences"]) == {
        "ai_analysis_snapshots_id_seq", "expenses_id_seq", "user_answers_id_seq", "user_profiles_id_seq",
    }
    assert list(ours["functions"]) == ["update_updated_at_column()"]


def test_baseline_keeps_production_names(baseline_db: Database) -> None:
    tables = snapshot_of(baseline_db)["tables"]
    constraint_names = {name for table in tables.values() for name in table["constraints"]}
    assert {
        "users_pkey", "users_email_key", "feature_usage_logs_user_id_fkey",
        "ai_analysis_snapshots_user_id_fkey", "habit_completions_habit_id_fkey", "fk_goals_user_id",
        "fk_transactions_goal_id",
    } <= constraint_names
    # The FKs SCHEMA.md lists as absent before 0022/0026 must stay absent in the baseline.
    for table in ("daily_plan", "subscriptions", "transactions", "habits", "moods", "push_tokens"):
        fks = [c["definition"] for c in tables[table]["constraints"].values() if c["type"] == "f"]
        assert not [d for d in fks if "REFERENCES users" in d], table
    assert "WHERE (deleted_at IS NULL)" in tables["goals"]["indexes"]["idx_goals_deleted_at"]["definition"]


def test_models_match_migrated_database(baseline_db: Database) -> None:
    engine = migrate.engine_for(baseline_db)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_models_create_all_equals_migration(new_db: Callable[[], Database], baseline_db: Database) -> None:
    created = new_db()
    engine = migrate.engine_for(created)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
    finally:
        engine.dispose()

    # Compared without triggers and functions: a declarative model has no way to declare the plpgsql
    # function update_updated_at_column() or its two triggers, so only the migration creates them.
    # Everything else (column order, types, defaults, comments, constraint and index names, partial
    # index predicates, SERIAL sequences) must be identical.
    from_models = without_code_objects(snapshot_of(created))
    from_migration = without_code_objects(snapshot_of(baseline_db))
    assert catalog.diff(from_models, from_migration, labels=("models", "migration")) == []


def test_downgrade_below_the_baseline_is_refused_and_changes_nothing(empty_db: Database) -> None:
    """Issue 12.1: the baseline is the application's own schema; the chain never drops it."""
    migrate.upgrade(empty_db, migrate.BASELINE)
    before = snapshot_of(empty_db)
    for target in ("base", "-1"):
        with pytest.raises(UsageError, match="below the baseline"):
            migrate.downgrade(empty_db, target)
    assert catalog.diff(before, snapshot_of(empty_db), labels=("before", "after")) == []
    assert migrate.current(empty_db).revision == migrate.BASELINE


def test_upgrade_accepts_the_file_name_of_the_baseline(empty_db: Database) -> None:
    assert migrate.resolve_revision(BASELINE_FILE_NAME) == migrate.BASELINE
    result = migrate.upgrade(empty_db, BASELINE_FILE_NAME)
    assert result.to_revision == migrate.BASELINE
    assert migrate.current(empty_db).revision == migrate.BASELINE
    assert len(snapshot_of(empty_db)["tables"]) == 26


def test_snapshot_is_json_and_deterministic(baseline_db: Database) -> None:
    first, second = snapshot_of(baseline_db), snapshot_of(baseline_db)
    assert json.dumps(first) == json.dumps(second)
    assert json.loads(json.dumps(first)) == first
    assert "alembic_version" not in first["tables"]
    columns = [c["name"] for c in first["tables"]["daily_plan"]["columns"]]
    assert columns[:3] == ["id", "user_id", "date"] and columns[-1] == "status"


def test_diff_names_each_difference() -> None:
    def table(*columns: dict[str, Any]) -> dict[str, Any]:
        return {"tables": {"t": {"columns": list(columns), "indexes": {}}}, "functions": {}, "sequences": {}}

    a = table({"name": "id", "type": "uuid"}, {"name": "x", "type": "integer"})
    b = table({"name": "x", "type": "bigint"}, {"name": "id", "type": "uuid"}, {"name": "y", "type": "text"})
    b["sequences"]["s"] = {"owned_by": None}

    assert catalog.diff(a, a) == []
    assert catalog.diff(a, b, labels=("old", "new")) == [
        "sequences.s: only in new",
        "tables.t.columns: order differs: old ['id', 'x'], new ['x', 'id']",
        "tables.t.columns.y: only in new",
        "tables.t.columns.x.type: old 'integer' != new 'bigint'",
    ]
