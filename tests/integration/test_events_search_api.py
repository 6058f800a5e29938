"""`GET /v1/events` through the running server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.metrics.search import MAX_LIMIT
from tests.support import settings_for

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def app(db):
    """The app with a fixed clock, so `now - 30m` in a filter means a known instant."""
    return create_app(settings_for(db), database=db, clock=lambda: NOW)


def _event(event_id: str, minutes_ago: float, **extra) -> dict:
    ts = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {"event_id": event_id, "ts": ts, "route": "support.reply", **extra}


@pytest.fixture
def seeded(api):
    batch = [
        _event("old", 120, status="error", error_code=503, tokens_out=10),
        _event("mid", 20, status="flagged", contains_banned=True, tokens_out=2500,
               model="gpt-4o", metadata={"user": {"plan": "pro"}, "score": 0.25}),
        _event("new", 1, tokens_out=300, route="x' OR 1=1 --", metadata={"tag": "50%_off"}),
    ]
    assert api.post("/v1/events", json=batch).json()["accepted"] == 3
    return api


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["events"])
    return [e["event_id"] for e in body["events"]]


def test_requires_a_valid_key(server, db):
    missing = httpx.get(f"{server}/v1/events")
    wrong = httpx.get(f"{server}/v1/events", headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert wrong.status_code == 401


def test_lists_newest_first_with_every_field(seeded):
    body = seeded.get("/v1/events").json()
    assert [e["event_id"] for e in body["events"]] == ["new", "mid", "old"]
    assert body["count"] == 3
    mid = body["events"][1]
    assert datetime.fromisoformat(mid["ts"]) == NOW - timedelta(minutes=20)
    assert mid["metadata"] == {"user": {"plan": "pro"}, "score": 0.25}
    assert mid["status"] == "flagged" and mid["contains_banned"] is True
    assert mid["tokens_out"] == 2500 and mid["model"] == "gpt-4o"
    assert mid["priced"] is (mid["cost_usd"] is not None)
    assert set(mid) >= {"event_id", "ts", "received_at", "route", "env", "model", "provider",
                        "region", "customer_tier", "tokens_in", "tokens_out", "duration_ms",
                        "status", "error_code", "contains_banned", "cost_usd", "priced",
                        "prompt_id", "prompt_version", "attempt", "metadata", "input_excerpt",
                        "output_excerpt"}


def test_filter_order_and_limit(seeded):
    assert _ids(seeded.get("/v1/events", params={"filter": "tokens_out > 100"})) == ["new", "mid"]
    assert _ids(seeded.get("/v1/events", params={"order": "oldest"})) == ["old", "mid", "new"]
    assert _ids(seeded.get("/v1/events", params={"limit": 1})) == ["new"]
    assert _ids(seeded.get("/v1/events", params={"limit": 2, "order": "oldest"})) == ["old", "mid"]
    assert _ids(seeded.get("/v1/events", params={"limit": MAX_LIMIT * 5})) == ["new", "mid", "old"]
    assert _ids(seeded.get("/v1/events", params={"filter": ""})) == ["new", "mid", "old"]


def test_filters_use_the_service_clock_metadata_and_text_coercion(seeded):
    def ids(text: str) -> list[str]:
        return _ids(seeded.get("/v1/events", params={"filter": text}))

    assert ids("ts > now - 30m") == ["new", "mid"]
    assert ids('metadata.user.plan = "pro" AND metadata.score < 0.5') == ["mid"]
    assert ids('metadata.tag contains "%_"') == ["new"]
    assert ids("error_code = 503") == ["old"]
    assert ids('status = "flagged" OR contains_banned = true OR tokens_out > 2000') == ["mid"]


def test_injection_shaped_filter_is_a_plain_value(seeded):
    assert _ids(seeded.get("/v1/events", params={"filter": "route = \"x' OR 1=1 --\""})) == ["new"]
    dropped = seeded.get("/v1/events", params={"filter": "route = \"'; DROP TABLE events; --\""})
    assert _ids(dropped) == []
    assert seeded.get("/v1/events").json()["count"] == 3


@pytest.mark.parametrize("params, message", [
    ({"filter": "tokens_out > "}, "bad filter at column 14: expected a value after '>'"),
    ({"filter": "colour = 'red'"}, "bad filter at column 1: unknown field 'colour'"),
    ({"filter": "tokens_out = 'many'"}, "bad filter at column 14: tokens_out is a number"),
    ({"limit": "ten"}, "bad request: limit: Input should be"),
    ({"limit": "0"}, "bad request: limit: Input should be"),
    ({"limit": "-5"}, "bad request: limit: Input should be"),
    ({"limit": "1.5"}, "bad request: limit: Input should be"),
    ({"order": "sideways"}, "bad request: order: Input should be 'newest' or 'oldest'"),
])
def test_bad_parameters_are_400_with_the_message(seeded, params, message):
    response = seeded.get("/v1/events", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_unknown_field_error_lists_the_valid_fields(seeded):
    error = seeded.get("/v1/events", params={"filter": "colour = 'red'"}).json()["error"]
    assert "valid fields: event_id, ts, route" in error and "metadata.<key>" in error
