"""The declarative base of the MITA models, and the naming rules that give PostgreSQL's own names."""

from __future__ import annotations

from sqlalchemy import DateTime, MetaData, text
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.elements import TextClause

# Production's constraints were mostly named by PostgreSQL itself (users_pkey, users_email_key,
# feature_usage_logs_user_id_fkey) and its indexes by Alembic's op.f() (ix_<table>_<column>). The
# convention reproduces exactly those names; the few hand-named ones are spelled out where declared.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "ix": "ix_%(column_0_label)s",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}

# Types that recur on most tables; naive `timestamp` columns use plain DateTime() where they occur.
TZ = DateTime(timezone=True)
NOW: TextClause = text("now()")
CURRENT_TIMESTAMP: TextClause = text("CURRENT_TIMESTAMP")
PRECISION_COMMENT = "Added precision(12,2) for financial accuracy"


class Base(DeclarativeBase):
    """The base of every MITA model; its metadata is what Alembic compares the database with."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
