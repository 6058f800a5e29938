"""`GET /v1/incidents/{n}/postmortem` through a running server (both backends)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from llm_incident.app import create_app
from tests import postmortem_scenario as scenario
from tests.support import settings_for

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
NOW = scenario.START + timedelta(minutes=50)


@pytest.fixture
def app(db):
    """The conftest `app` with its clock at 14:50, while the incident runs."""
    return create_app(settings_for(db), database=db, clock=lambda: NOW)


def test_markdown_of_a_closed_incident_is_the_golden_file(db, api):
    scenario.seed(db)
    response = api.get("/v1/incidents/1/postmortem")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.text == (GOLDEN / "postmortem_closed.md").read_text(encoding="utf-8")


def test_open_incident_gives_a_draft_as_of_the_clock(db, api):
    scenario.seed(db, close=False)
    response = api.get("/v1/incidents/1/postmortem", params={"format": "markdown"})
    assert response.text == (GOLDEN / "postmortem_draft.md").read_text(encoding="utf-8")


def test_json_format_returns_the_compiled_data(db, api):
    scenario.seed(db)
    body = api.get("/v1/incidents/1/postmortem", params={"format": "json"}).json()
    assert body["number"] == 1 and body["draft"] is False and body["status"] == "closed"
    assert body["first_mitigation_at"] == "2026-11-26T14:12:00+00:00"
    assert body["time_to_mitigate_s"] == 720 and body["duration_s"] == 3600
    assert [p["name"] for p in body["phases"]] == ["baseline", "during", "after"]
    (reply,) = [m for m in body["metrics"] if m["route"] == "support.reply"]
    assert reply["during"]["calls"] == 37 and reply["baseline"]["p95_tokens_out"] == 364
    assert body["evidence_counts"] == {"attached": 28, "good": 5, "bad": 20}
    assert len(body["evidence"]) == 25 and body["evidence_more"] == 3
    assert [(a["route"], a["description"]) for a in body["still_active"]] == [
        ("support.reply", "max_tokens clamped to 800"), ("search.answer", "killed")]
    assert body["follow_ups"][0].startswith("Add evals from the 20 events labelled bad")


def test_errors(db, api, server):
    assert httpx.get(f"{server}/v1/incidents/1/postmortem").status_code == 401
    missing = api.get("/v1/incidents/9/postmortem")
    assert missing.status_code == 404 and missing.json() == {"error": "there is no incident #9"}
    bad = api.get("/v1/incidents/1/postmortem", params={"format": "pdf"})
    assert bad.status_code == 400 and "format" in bad.json()["error"]
