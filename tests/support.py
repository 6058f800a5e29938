"""Test helpers: throwaway databases on SQLite and PostgreSQL, the statements a block sends, and a
real uvicorn server in a thread."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from llm_incident.db import Database, normalize_url
from llm_incident.migrate import upgrade
from llm_incident.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get(
    "LLM_INCIDENT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_KEY = "test-key-0123456789"


def postgres_or_skip() -> str:
    """The admin URL when PostgreSQL answers; otherwise skip (fail under CI=true)."""
    try:
        engine = create_engine(normalize_url(PG_ADMIN_URL))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a skipped PostgreSQL run is a failure)")
        pytest.skip(message)
    return PG_ADMIN_URL


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a database of our own on the server, yield its URL, drop it afterwards."""
    admin_url = postgres_or_skip()
    name = f"llm_incident_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database_for(backend: str, tmp_path: Path, *, migrate: bool = True) -> Iterator[Database]:
    """A fresh, migrated Database on `backend` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        urls = _sqlite_url(tmp_path)
    else:
        urls = postgres_database()
    with urls as url:
        db = Database(url)
        if migrate:
            upgrade(db)
        try:
            yield db
        finally:
            db.dispose()


@contextmanager
def _sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'test.db'}"


@contextmanager
def recorded_statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements `db` sends inside the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, params, _context, _many) -> None:
        seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def settings_for(db: Database, **overrides: object) -> Settings:
    """Settings for tests: Slack and the scheduler off unless asked, one bootstrap API key, the
    given database."""
    values: dict[str, object] = {
        "database_url": db.url,
        "scheduler": False,
        "api_keys": [TEST_KEY],
        "slack_bot_token": None,
        "slack_signing_secret": None,
        "slack_app_token": None,
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(app, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on `port` (default: a free one); yields the base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def waiting_on_server(url: str, count: int, timeout: float = 10.0) -> None:
    """Return once the server's /metrics counts `count` long-polls waiting."""
    deadline = time.monotonic() + timeout
    body = ""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TEST_KEY}"},
                      timeout=5) as api:
        while time.monotonic() < deadline:
            body = api.get("/metrics").text
            if f"llm_incident_controls_long_polls {float(count)}" in body:
                return
    raise AssertionError(f"the server never counted {count} long-polls waiting:\n{body}")
