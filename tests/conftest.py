"""Shared fixtures: `db` runs a test on SQLite and on PostgreSQL; `server` is the real app over HTTP."""

from __future__ import annotations

import os

import httpx
import pytest

from llm_incident.app import create_app
from tests.support import TEST_KEY, database_for, live_server, settings_for

for _var in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
             "SLACK_APP_TOKEN", "LLM_INCIDENT_DATABASE_URL", "LLM_INCIDENT_API_KEYS"):
    os.environ.pop(_var, None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    """A fresh migrated database, once per backend."""
    with database_for(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def sqlite_db(tmp_path):
    with database_for("sqlite", tmp_path) as database:
        yield database


@pytest.fixture
def app(db):
    return create_app(settings_for(db), database=db)


@pytest.fixture
def server(app):
    """Base URL of the app served by uvicorn on a free port."""
    with live_server(app) as url:
        yield url


@pytest.fixture
def api(server):
    """An httpx client for the running server, authenticated with the bootstrap key."""
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {TEST_KEY}"},
                      timeout=30) as client:
        yield client
