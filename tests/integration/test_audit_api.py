"""`GET /v1/audit` over HTTP: the control audit trail filtered by route, actor, incident and time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.controls.service import change_controls
from tests.support import TEST_KEY, live_server, settings_for

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def audit(db):
    """A server with a read-only and a controls key, and three changes written at known times."""
    with db.write() as session:
        change_controls(session, "support.reply", "prod", {"enabled": False}, actor="U0ANA", now=T0)
        change_controls(session, "support.reply", "prod", {"enabled": True}, actor="key:bot on behalf of U0ANA",
                        now=T0 + timedelta(minutes=5))
        change_controls(session, "search.answer", "prod", {"retry_cap": 1}, actor="key:bot",
                        now=T0 + timedelta(minutes=10))
    app = create_app(settings_for(db, api_keys=["read:reader-0123456789", "controls:flip-0123456789",
                                                TEST_KEY]), database=db)
    with live_server(app) as base:
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer reader-0123456789"}) as client:
            yield client


def actors(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["entries"])
    return [entry["actor"] for entry in body["entries"]]


def test_all_entries_newest_first_with_before_and_after(audit):
    body = audit.get("/v1/audit").json()
    assert [e["actor"] for e in body["entries"]] == ["key:bot", "key:bot on behalf of U0ANA", "U0ANA"]
    first = body["entries"][-1]
    assert (first["route"], first["before"], first["after"], first["outcome"]) == (
        "support.reply", {"enabled": True}, {"enabled": False}, "applied")


def test_filters_by_route_actor_and_time(audit):
    assert actors(audit.get("/v1/audit", params={"route": "support.reply"})) == [
        "key:bot on behalf of U0ANA", "U0ANA"]
    assert actors(audit.get("/v1/audit", params={"actor": "key:bot"})) == ["key:bot", "key:bot on behalf of U0ANA"]
    assert actors(audit.get("/v1/audit", params={"actor": "U0ANA"})) == ["U0ANA"]
    assert actors(audit.get("/v1/audit", params={"actor": "key:b%"})) == []
    window = {"since": (T0 + timedelta(minutes=1)).isoformat(), "until": (T0 + timedelta(minutes=10)).isoformat()}
    assert actors(audit.get("/v1/audit", params=window)) == ["key:bot on behalf of U0ANA"]
    assert actors(audit.get("/v1/audit", params={"limit": 1})) == ["key:bot"]


def test_a_bad_timestamp_is_a_400_and_an_empty_window_is_empty(audit):
    for bad in ("2026-11-30T12:00:00", "2026-11-30", "0.5", "yesterday"):
        answer = audit.get("/v1/audit", params={"since": bad})
        assert answer.status_code == 400 and "since must be an RFC 3339 timestamp" in answer.json()["error"], bad
    assert actors(audit.get("/v1/audit", params={"since": T0.isoformat(), "until": T0.isoformat()})) == []
    assert len(actors(audit.get("/v1/audit", params={"since": "0393-07-22T04:34:45Z"}))) == 3
    assert actors(audit.get("/v1/audit", params={"until": "0393-07-22T04:34:45Z"})) == []


def test_an_api_change_shows_up_under_its_key_and_nothing_edits_the_trail(audit):
    flip = {"Authorization": "Bearer flip-0123456789"}
    put = audit.put("/v1/routes/support.reply/controls", json={"max_tokens": 64, "on_behalf_of": "U0BEN"},
                    headers=flip)
    assert put.status_code == 200, put.text
    mine = audit.get("/v1/audit", params={"actor": "key:env-key-2"}).json()["entries"]
    assert [(e["actor"], e["after"]) for e in mine] == [("key:env-key-2 on behalf of U0BEN", {"max_tokens": 64})]
    for method in ("PUT", "POST", "PATCH", "DELETE"):
        assert audit.request(method, "/v1/audit", headers={"Authorization": f"Bearer {TEST_KEY}"}).status_code == 405
    assert audit.get("/v1/audit", headers=flip).status_code == 403
