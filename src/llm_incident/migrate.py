"""Alembic migrations, run programmatically: `llm-incident db upgrade`, and at `serve`/`demo` start."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from llm_incident.db import Database

MIGRATION_LOCK = 7_266_244_118_517_812_846  # one key for every process of this service


def alembic_config(database: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "llm_incident:migrations")
    cfg.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` in one transaction. On PostgreSQL it holds an advisory lock
    until it commits, so replicas starting together upgrade one after the other."""
    cfg = alembic_config(database)
    with database.write_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()
