"""`POST /v1/events` through the running server, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json

import httpx
from sqlmodel import select

from llm_incident.events.models import Event


def _event(i: int, **extra) -> dict:
    return {"event_id": f"ev-{i}", "route": "support.reply", "model": "gpt-4o-mini",
            "provider": "openai", "tokens_in": 1000, "tokens_out": 200, "duration_ms": 850.0,
            **extra}


def _rows(db) -> list[Event]:
    with db.read() as session:
        return list(session.exec(select(Event).order_by(Event.event_id)))


def test_requires_a_valid_key(server, db):
    missing = httpx.post(f"{server}/v1/events", json=[_event(1)])
    wrong = httpx.post(f"{server}/v1/events", json=[_event(1)],
                       headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert _rows(db) == []


def test_batch_object_and_bare_array_both_store(api, db):
    first = api.post("/v1/events", json={"events": [_event(1), _event(2)]})
    second = api.post("/v1/events", json=[_event(3)])
    assert first.json() == {"accepted": 2, "duplicates": 0, "rejected": [], "unpriced": 0}
    assert second.json()["accepted"] == 1
    assert [r.event_id for r in _rows(db)] == ["ev-1", "ev-2", "ev-3"]


def test_mixed_batch_keeps_good_events_and_reports_bad_ones_by_index(api, db):
    batch = [
        _event(1),
        {"event_id": "bad-1", "route": "support.reply", "tokens_out": -5},
        {"event_id": "bad-2", "status": "weird"},
        "not an object",
        _event(2, ts="2026-11-26T10:00:00"),
        _event(3, latency=5),
        _event(4),
    ]
    body = api.post("/v1/events", json=batch).json()
    assert body["accepted"] == 2
    by_index = {r["index"]: r for r in body["rejected"]}
    assert sorted(by_index) == [1, 2, 3, 4, 5]
    assert by_index[1]["event_id"] == "bad-1"
    assert by_index[1]["errors"] == [
        {"field": "tokens_out", "message": "Input should be greater than or equal to 0"}]
    assert {e["field"] for e in by_index[2]["errors"]} == {"route", "status"}
    assert by_index[3]["errors"][0]["message"] == "each event must be a JSON object"
    assert "UTC offset" in by_index[4]["errors"][0]["message"]
    assert by_index[5]["errors"][0]["field"] == "latency"
    assert [r.event_id for r in _rows(db)] == ["ev-1", "ev-4"]


def test_resent_event_id_is_a_counted_duplicate_never_a_second_row(api, db):
    api.post("/v1/events", json=[_event(1), _event(2)])
    again = api.post("/v1/events", json=[_event(1), _event(1), _event(3)]).json()
    assert again["accepted"] == 1 and again["duplicates"] == 2
    assert [r.event_id for r in _rows(db)] == ["ev-1", "ev-2", "ev-3"]


def test_defaults_generated_id_and_aware_timestamps(api, db):
    api.post("/v1/events", json=[{"route": "search.summarize",
                                  "ts": "2026-11-26T14:30:00+02:00"}])
    (row,) = _rows(db)
    assert len(row.event_id) == 32 and row.env == "prod" and row.status == "ok"
    assert row.attempt == 1 and row.meta == {}
    assert row.ts.isoformat() == "2026-11-26T12:30:00+00:00"
    assert row.received_at.tzinfo is not None


def test_cost_from_price_table_and_unknown_model_left_unpriced(api, db):
    body = api.post("/v1/events", json=[
        _event(1),
        _event(2, model="our-finetune-v7", provider="acme"),
        _event(3, cost_usd=0.5, model="our-finetune-v7"),
    ]).json()
    assert body["unpriced"] == 1
    rows = {r.event_id: r for r in _rows(db)}
    # gpt-4o-mini: $0.15 / M input, $0.60 / M output
    assert abs(rows["ev-1"].cost_usd - (1000 * 0.15 + 200 * 0.60) / 1e6) < 1e-12
    assert rows["ev-1"].priced is True
    assert rows["ev-2"].cost_usd is None and rows["ev-2"].priced is False
    assert rows["ev-3"].cost_usd == 0.5 and rows["ev-3"].priced is True


def test_excerpts_are_redacted_and_truncated(api, db):
    text = "reach me at jane.doe@example.com, key sk-live-abcdefghijklmnopqrstuvwx " + "x" * 3000
    api.post("/v1/events", json=[_event(1, input_excerpt=text, output_excerpt="fine")])
    (row,) = _rows(db)
    assert "jane.doe" not in row.input_excerpt and "[email]" in row.input_excerpt
    assert "sk-live" not in row.input_excerpt and "[secret]" in row.input_excerpt
    assert len(row.input_excerpt) == 2000 and row.input_excerpt.endswith("…")
    assert row.output_excerpt == "fine"


def test_metadata_and_numeric_codes_round_trip(api, db):
    api.post("/v1/events", json=[_event(1, status="error", error_code=429, prompt_version=42,
                                        metadata={"tenant": "acme", "n": [1, 2]})])
    (row,) = _rows(db)
    assert (row.error_code, row.prompt_version) == ("429", "42")
    assert row.meta == {"tenant": "acme", "n": [1, 2]}


def test_malformed_json_is_400_with_position(api, db):
    response = api.post("/v1/events", content=b'[{"route": "a",}]',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON at line 1 column")
    wrong_shape = api.post("/v1/events", json={"route": "a"})
    assert wrong_shape.status_code == 400 and "events" in wrong_shape.json()["error"]
    assert _rows(db) == []


def test_oversize_batches_are_413_and_store_nothing(api, db):
    too_many = api.post("/v1/events", json=[{"route": "a"}] * 5001)
    assert too_many.status_code == 413 and "5000" in too_many.json()["error"]
    big = json.dumps([{"route": "a", "input_excerpt": "y" * (6 * 1024 * 1024)}]).encode()
    too_big = api.post("/v1/events", content=big, headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413
    assert _rows(db) == []


def test_gzip_body_is_accepted_and_gzip_bomb_is_413(api, db):
    ok = api.post("/v1/events", content=gzip.compress(json.dumps([_event(1)]).encode()),
                  headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert ok.json()["accepted"] == 1
    bomb = gzip.compress(b"[" + b" " * (6 * 1024 * 1024) + b"]")
    refused = api.post("/v1/events", content=bomb, headers={"Content-Encoding": "gzip"})
    assert refused.status_code == 413


def test_ingest_is_counted_in_prometheus_metrics(api):
    api.post("/v1/events", json=[_event(1), _event(1), {"route": ""}])
    text = api.get("/metrics").text
    assert 'llm_incident_events_ingested_total{outcome="accepted",source="events"} 1.0' in text
    assert 'llm_incident_events_ingested_total{outcome="duplicate",source="events"} 1.0' in text
    assert 'llm_incident_events_ingested_total{outcome="rejected",source="events"} 1.0' in text
