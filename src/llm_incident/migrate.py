"""Alembic migrations, run programmatically: `llm-incident db upgrade`, and at `serve`/`demo` start."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from llm_incident.db import Database


def alembic_config(database: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "llm_incident:migrations")
    cfg.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`; each migration runs in its own transaction."""
    cfg = alembic_config(database)
    with database.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()
