"""`GET /v1/incidents/{n}/evidence` through the running server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from llm_incident.evidence.export import COLUMNS
from llm_incident.evidence.service import attach
from llm_incident.incidents.service import StartRequest, start_incident

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)


def _seed(api, db):
    batch = [{"event_id": f"ev-{i}", "route": "support.reply", "model": "gpt-4o",
              "tokens_out": 100 * i, "ts": (NOW - timedelta(minutes=i)).isoformat(),
              "output_excerpt": f"answer {i}", "metadata": {"i": i}} for i in range(1, 5)]
    assert api.post("/v1/events", json=batch).json()["accepted"] == 4
    with db.write() as session:
        incident, _ = start_incident(session, StartRequest(commander="U1", routes=("support.reply",)),
                                     now=NOW)
        attach(session, incident, ["ev-1", "ev-2"], label="good", actor="U2", now=NOW)
        attach(session, incident, ["ev-3"], label="bad", note="made up a refund", actor="U3",
               now=NOW + timedelta(minutes=1))
        attach(session, incident, ["ev-4"], actor="U2", now=NOW + timedelta(minutes=2))
        start_incident(session, StartRequest(commander="U1"), now=NOW)  # #2, no evidence


def test_evidence_of_an_incident(api, db):
    _seed(api, db)
    response = api.get("/v1/incidents/1/evidence")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["incident"] == 1
    assert body["counts"] == {"attached": 4, "good": 2, "bad": 1}
    rows = body["evidence"]
    assert [r["event_id"] for r in rows] == ["ev-3", "ev-1", "ev-2", "ev-4"]
    assert all(list(r) == list(COLUMNS) for r in rows)
    bad = rows[0]
    assert (bad["label"], bad["note"], bad["labelled_by"], bad["incident"]) == (
        "bad", "made up a refund", "U3", 1)
    assert (bad["route"], bad["model"], bad["tokens_out"]) == ("support.reply", "gpt-4o", 300)
    assert (bad["output_excerpt"], bad["metadata"]) == ("answer 3", {"i": 3})
    assert rows[3]["label"] is None

    empty = api.get("/v1/incidents/2/evidence").json()
    assert empty == {"incident": 2, "counts": {"attached": 0, "good": 0, "bad": 0}, "evidence": []}


def test_unknown_incident_is_404_and_bad_number_is_400(api):
    missing = api.get("/v1/incidents/42/evidence")
    assert missing.status_code == 404 and missing.json() == {"error": "there is no incident #42"}
    assert api.get("/v1/incidents/abc/evidence").status_code == 400


def test_requires_a_valid_key(server):
    assert httpx.get(f"{server}/v1/incidents/1/evidence").status_code == 401
    wrong = httpx.get(f"{server}/v1/incidents/1/evidence", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
