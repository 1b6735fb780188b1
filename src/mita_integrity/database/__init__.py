"""The database: connection URLs, connections and sessions, the target (a URL or the embedded
server), the embedded PostgreSQL, backups, the errors every layer raises, the constraint definitions the
migrations and `verify` compare, the SQLAlchemy models of the MITA schema, and where the two Alembic
chains stand (`chain_state`). Nothing here knows about rules, repairs or runs.

May import: findings, wording.
"""
