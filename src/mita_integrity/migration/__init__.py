"""Migration: the `migrate` command (`command`), its guards (`guards`), the clean-up of a killed
online step (`leftovers`), online DDL (`online`), what the tool hands the chain's revisions (`host`: connections
and run records), the API of exported revisions (`api`), `migrate adopt` (`adopt`) and `migrate export`
(`export`). The chain itself lives in `mita_integrity.migrations` (Alembic's `script_location`, which users'
configurations name), and the code its revisions run in `mita_integrity.migrations.frozen`: both are frozen
(tests/test_migration_freeze.py), so their directions are declared in tests/test_architecture.py. Nothing
here runs a repair or the seed: `migrate` runs the chain, and a migration never runs code that changes.

May import: migrations.frozen, check, runs, database, findings, wording.
"""
