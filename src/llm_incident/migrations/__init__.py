"""Alembic migration scripts (packaged so `pip install .` can upgrade a database)."""
