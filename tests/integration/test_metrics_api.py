"""`GET /v1/routes/{route}/metrics` and `…/breakdowns` through a running server (both backends)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.events.ingest import ingest_events
from tests.support import settings_for

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def app(db):
    """The conftest `app` with its clock fixed at NOW (the `server`/`api` fixtures serve it)."""
    return create_app(settings_for(db), database=db, clock=lambda: NOW)


@pytest.fixture
def client(db, api):
    """`api`, after storing a window of traffic and a quieter baseline."""
    events = []
    for i in range(20):  # now: 20 calls in the last 30 minutes, 2 flagged, one 429
        events.append({"event_id": f"now-{i}", "route": "support.reply",
                       "ts": (NOW - timedelta(minutes=1 + i)).isoformat(),
                       "model": "gpt-4o-mini", "provider": "openai", "env": "prod",
                       "tokens_in": 1000, "tokens_out": 2000 + i, "duration_ms": 900.0 + i,
                       "status": "flagged" if i < 2 else ("error" if i == 2 else "ok"),
                       "error_code": "429" if i == 2 else None, "prompt_id": "p1"})
    for i in range(10):  # previous 30 minutes: 10 calls
        events.append({"event_id": f"base-{i}", "route": "support.reply",
                       "ts": (NOW - timedelta(minutes=31 + i)).isoformat(),
                       "model": "gpt-4o-mini", "provider": "openai", "env": "staging",
                       "tokens_in": 1000, "tokens_out": 250, "duration_ms": 800.0})
    with db.write() as session:
        assert ingest_events(session, events, now=NOW).accepted == 30
    return api


def test_metrics_require_a_key(client, server):
    for path in ("metrics", "breakdowns"):
        response = httpx.get(f"{server}/v1/routes/support.reply/{path}")
        assert response.status_code == 401


def test_metrics_json_shape_and_numbers(client):
    body = client.get("/v1/routes/support.reply/metrics", params={"window": "30m"}).json()
    assert body["route"] == "support.reply" and body["percentiles"] == "nearest-rank"
    assert body["window"] == {"start": "2026-11-26T13:30:00+00:00",
                              "end": "2026-11-26T14:00:00+00:00", "minutes": 30.0, "span": "30m"}
    assert body["baseline"] == {"kind": "previous", "start": "2026-11-26T13:00:00+00:00",
                                "end": "2026-11-26T13:30:00+00:00"}
    assert body["scope"] == {"filter": None}
    now, base = body["now"], body["baseline_stats"]
    assert (now["calls"], base["calls"]) == (20, 10)
    assert now["flagged_rate"] == 0.1 and now["error_codes"] == {"429": 1}
    assert now["p95_tokens_out"] == 2018 and base["p95_tokens_out"] == 250
    assert now["model_mix"] == {"gpt-4o-mini": 20}
    assert now["priced_calls"] + now["unpriced_calls"] == 20
    tokens = body["deltas"]["p95_tokens_out"]
    assert tokens["abs"] == 1768 and tokens["rel"] == pytest.approx(1768 / 250)
    assert tokens["verdict"] == "p95 tokens_out 8.1× baseline (2,018 vs 250)"
    assert set(body["deltas"]["calls"]) == {"now", "baseline", "abs", "rel", "verdict"}
    assert tokens["verdict"] in body["summary"]


def test_metrics_baselines_filters_and_narrowing(client):
    day = client.get("/v1/routes/support.reply/metrics",
                     params={"window": "1h", "baseline": "day"}).json()
    assert day["baseline"]["kind"] == "day" and day["baseline_stats"]["calls"] == 0
    assert "no traffic in the baseline" in day["deltas"]["p95_duration_ms"]["verdict"]
    explicit = client.get("/v1/routes/support.reply/metrics", params={
        "window": "30m", "baseline": "2026-11-26T13:00:00Z/2026-11-26T13:30:00Z"}).json()
    assert explicit["baseline"]["kind"] == "range" and explicit["baseline_stats"]["calls"] == 10
    filtered = client.get("/v1/routes/support.reply/metrics",
                          params={"window": "1h", "filter": 'status = "flagged"'}).json()
    assert filtered["now"]["calls"] == 2 and filtered["scope"]["filter"] == 'status = "flagged"'
    staging = client.get("/v1/routes/support.reply/metrics",
                         params={"window": "1h", "env": "staging"}).json()
    assert staging["now"]["calls"] == 10 and staging["scope"] == {"env": "staging",
                                                                  "filter": None}
    empty = client.get("/v1/routes/no.such.route/metrics").json()
    assert empty["now"]["calls"] == 0 and empty["deltas"]["error_rate"]["rel"] is None


@pytest.mark.parametrize("params, message", [
    ({"window": "soon"}, "window 'soon' not understood"),
    ({"window": "365d"}, "too long"),
    ({"baseline": "yesterday"}, "baseline 'yesterday' not understood"),
    ({"baseline": "2026-11-26T13:00:00/2026-11-26T13:30:00Z"}, "UTC offset"),
    ({"filter": "tokens_out >"}, "bad filter at column"),
    ({"filter": "nonsense = 1"}, "bad filter"),
])
def test_bad_parameters_are_400_with_the_reason(client, params, message):
    response = client.get("/v1/routes/support.reply/metrics", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_breakdowns_endpoint(client):
    response = client.get("/v1/routes/support.reply/breakdowns", params={"window": "1h"})
    body = response.json()
    assert response.status_code == 200
    assert body["baseline"]["kind"] == "previous" and body["window"]["span"] == "1h"
    assert body["p95_duration_by_model"] == [
        {"model": "gpt-4o-mini", "calls": 30, "p95_duration_ms": 918.0}]
    assert body["volume_by_route"][0]["route"] == "support.reply"
    assert body["errors_by_model_region"] == [
        {"model": "gpt-4o-mini", "region": "unknown", "error_code": "429", "count": 1}]
    assert body["top_prompts"][0]["prompt_id"] == "p1" and body["top_prompts"][0]["calls"] == 20
    assert body["model_mix"][0]["model"] == "gpt-4o-mini"
    bad = client.get("/v1/routes/support.reply/breakdowns", params={"limit": 0})
    assert bad.status_code == 400
