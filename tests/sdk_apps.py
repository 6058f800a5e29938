"""Helpers for the SDK integration tests: the app's `Controls` and `EventLogger` on the live server, a control
change the client has seen, and the events stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlmodel import select

from llm_incident.events.models import Event
from llm_incident_client import Controls, EventLogger
from tests.support import TEST_KEY

ROUTE = "support.reply"
MESSAGES = [{"role": "user", "content": "where is my order"}]  # 4 words: tokens in = 4 at the fake


@contextmanager
def controls_for(server: str) -> Iterator[Controls]:
    with Controls(server, TEST_KEY, wait=1) as cache:
        assert cache.wait_ready(5)
        yield cache


@contextmanager
def events_for(server: str) -> Iterator[EventLogger]:
    with EventLogger(server, TEST_KEY, flush_interval=0.02, max_retry_backoff=0.1) as logger:
        yield logger


def put(api: httpx.Client, controls: Controls, payload: dict, route: str = ROUTE) -> None:
    """Change the route's controls on the server and wait until the client's cache has the new version."""
    response = api.put(f"/v1/routes/{route}/controls", json=payload)
    assert response.status_code == 200, response.text
    version = response.json()["controls"]["version"]
    deadline = time.monotonic() + 5
    while controls.guard(route).version != version:
        assert time.monotonic() < deadline, "the client never saw the change"
        time.sleep(0.005)


def stored(db, events: EventLogger) -> list[Event]:
    """Every event the server stored, after the logger delivered what it holds."""
    assert events.flush(10)
    with db.read() as session:
        return list(session.exec(select(Event).order_by(Event.id)))
