"""The MITA migration chain (Alembic), shipped inside the package."""
