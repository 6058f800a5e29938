"""Poison input never blocks good input (issue #13 item 6), over the real server on SQLite and
PostgreSQL: a NUL, a lone surrogate, NaN or Infinity in any field of one event rejects that event,
naming the field; every valid event of the batch is stored; a `metadata.*` filter still works; and
the SDK isolates what the server refuses instead of retrying a batch forever."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from sqlmodel import select

from llm_incident.app import create_app
from llm_incident_client import EventLogger
from llm_incident.events.models import Event
from tests.support import TEST_KEY, live_server, settings_for

FAST = {"flush_interval": 0.02, "max_retry_backoff": 0.1, "timeout": 10}
NUL, SURROGATE, LOW_SURROGATE = r'"a\u0000b"', r'"a\ud800b"', r'"\udfffz"'
TEXT_FIELDS = ("route", "env", "model", "provider", "region", "customer_tier", "error_code",
               "prompt_id", "prompt_version", "input_excerpt", "output_excerpt")


def _poison_cases() -> list[tuple[str, str, str]]:
    """(case id, raw JSON of one event, the field its rejection must name)."""
    cases = []
    for name, bad in (("nul", NUL), ("surrogate", SURROGATE), ("low-surrogate", LOW_SURROGATE)):
        for field in TEXT_FIELDS:
            base = '"route": "poison.r", ' if field != "route" else ""
            cases.append((f"{name}-{field}", f'{{{base}"{field}": {bad}}}', field))
        cases.append((f"{name}-metadata-value", f'{{"route": "poison.r", "metadata": {{"k": [1, {{"deep": {bad}}}]}}}}',
                      "metadata"))
        cases.append((f"{name}-metadata-key", f'{{"route": "poison.r", "metadata": {{{bad}: 1}}}}', "metadata"))
        cases.append((f"{name}-unknown-key", f'{{"route": "poison.r", {bad}: 1}}', r"a\x00b" if name == "nul"
                      else (r"a\ud800b" if name == "surrogate" else r"\udfffz")))
    for literal in ("NaN", "Infinity", "-Infinity"):
        for field in ("duration_ms", "cost_usd", "tokens_in", "attempt"):
            cases.append((f"{literal}-{field}", f'{{"route": "poison.r", "{field}": {literal}}}', field))
        cases.append((f"{literal}-metadata", f'{{"route": "poison.r", "metadata": {{"x": {{"y": [{literal}]}}}}}}',
                      "metadata"))
    # a number past float range parses to infinity: as poison as the literal
    cases.append(("overflow-metadata", '{"route": "poison.r", "metadata": {"x": [1e999]}}',
                  "metadata"))
    return cases


def _stored(db, route: str = "poison.r") -> list[Event]:
    with db.read() as session:
        return list(session.exec(select(Event).where(Event.route == route).order_by(Event.event_id)))


def _good(event_id: str) -> str:
    return json.dumps({"event_id": event_id, "route": "poison.r", "metadata": {"tenant": "acme", "n": 1}})


def test_each_poison_event_is_rejected_by_field_and_every_valid_one_is_stored(api, db):
    cases = _poison_cases()
    events = [part for i, (_, raw, _) in enumerate(cases) for part in (_good(f"good-{i:03}"), raw)]
    response = api.post("/v1/events", content=f'{{"events": [{", ".join(events)}]}}'.encode(),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == len(cases)
    fields = {r["index"]: [e["field"] for e in r["errors"]] for r in answer["rejected"]}
    assert fields == {2 * i + 1: [field] for i, (_, _, field) in enumerate(cases)}, cases
    assert [e.event_id for e in _stored(db)] == [f"good-{i:03}" for i in range(len(cases))]
    found = api.get("/v1/events", params={"filter": 'metadata.tenant = "acme" AND metadata.n = 1',
                                          "limit": 500})
    assert found.status_code == 200, found.text
    assert len(found.json()["events"]) == len(cases)


def test_a_poison_event_id_is_answered_escaped_never_as_a_500(api, db):
    body = '[{"event_id": "id\\ud800", "route": "poison.r"}, {"event_id": "id\\u0000", "route": "poison.r"}]'
    answer = api.post("/v1/events", content=body.encode(), headers={"Content-Type": "application/json"}).json()
    assert [r["event_id"] for r in answer["rejected"]] == [r"id\ud800", r"id\x00"]
    assert [r["errors"][0]["field"] for r in answer["rejected"]] == ["event_id", "event_id"]


def test_150_events_with_one_of_each_poison_store_every_valid_one(api, db):
    poison = [NUL, SURROGATE]
    events = [_good(f"ev-{i:03}") for i in range(150)]
    events[10] = f'{{"event_id": "p1", "route": {poison[0]}}}'
    events[70] = f'{{"event_id": "p2", "route": "poison.r", "metadata": {{"k": {poison[1]}}}}}'
    events[140] = '{"event_id": "p3", "route": "poison.r", "duration_ms": NaN}'
    response = api.post("/v1/events", content=f"[{','.join(events)}]".encode(),
                        headers={"Content-Type": "application/json"})
    answer = response.json()
    assert answer["accepted"] == 147 and [r["event_id"] for r in answer["rejected"]] == ["p1", "p2", "p3"]
    assert len(_stored(db)) == 147


def test_strict_json_elsewhere_nan_and_surrogates_are_400_never_stored(api, db):
    for body in ('{"route": "r", "kind": "deploy", "description": "x", "ts": NaN}',
                 '{"route": "r", "kind": "deploy", "description": "x\\ud800"}'):
        response = api.post("/v1/changes", content=body.encode(), headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "malformed JSON" in response.json()["error"]
    assert api.get("/v1/changes", params={"route": "r"}).json().get("changes", []) == []


def _span(i: int, attrs: list[dict]) -> dict:
    return {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": f"chat-{i}",
            "startTimeUnixNano": "1764165600000000000", "endTimeUnixNano": "1764165600400000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "llm_incident.route", "value": {"stringValue": "poison.r"}}, *attrs]}


def _traces(*spans: dict) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode()


@pytest.mark.parametrize("attr, value", [("gen_ai.usage.input_tokens", "NaN"),
                                         ("gen_ai.request.max_tokens", "Infinity"),
                                         ("llm_incident.attempt", "-Infinity")])
def test_otlp_non_finite_numbers_reject_their_span_only(api, db, attr, value):
    body = _traces(_span(0, []), _span(1, [{"key": attr, "value": {"doubleValue": value}}]), _span(2, []))
    response = api.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert len(_stored(db)) == 2
    literal = body.replace(f'"{value}"'.encode(), value.encode())  # a bare NaN is not OTLP JSON
    assert api.post("/v1/traces", content=literal, headers={"Content-Type": "application/json"}).status_code == 400


# --- the SDK ---------------------------------------------------------------------------------------------------
def test_sdk_150_events_one_nul_stores_149_and_counts_the_rejection(server, db, caplog):
    with caplog.at_level(logging.WARNING, logger="llm_incident.client"):
        with EventLogger(server, TEST_KEY, batch_size=150, **FAST) as logger:
            for i in range(150):
                logger.log({"event_id": f"sdk-{i:03}", "route": "a\x00b" if i == 75 else "poison.r"})
            assert logger.flush(20) is True
            stats = logger.stats
    assert (stats.sent, stats.rejected, stats.retries, stats.queued) == (149, 1, 0, 0)
    assert len(_stored(db)) == 149
    assert "event sdk-075 rejected by the server: route: text cannot contain NUL" in caplog.text


def test_sdk_nan_and_surrogates_are_refused_locally_naming_the_field(server, db, caplog):
    with caplog.at_level(logging.WARNING, logger="llm_incident.client"):
        with EventLogger(server, TEST_KEY, **FAST) as logger:
            logger.log({"route": "poison.r", "metadata": {"score": float("nan")}})
            logger.log({"route": "poison.r", "output_excerpt": "x\ud800"})
            good = [logger.log({"route": "poison.r"}) for _ in range(5)]
            assert logger.flush(20) is True
            stats = logger.stats
    assert (stats.sent, stats.invalid, stats.queued) == (5, 2, 0)
    assert sorted(e.event_id for e in _stored(db)) == sorted(good)
    assert "field 'metadata'" in caplog.text and "field 'output_excerpt'" in caplog.text


def test_sdk_splits_a_batch_the_server_refuses_as_too_large(db):
    app = create_app(settings_for(db, max_batch_events=20), database=db)
    with live_server(app) as url, EventLogger(url, TEST_KEY, batch_size=150, **FAST) as logger:
        for i in range(150):
            logger.log({"event_id": f"big-{i:03}", "route": "poison.r" if i != 33 else "a\x00"})
        assert logger.flush(30) is True
        stats = logger.stats
    assert (stats.sent, stats.rejected, stats.retries, stats.queued) == (149, 1, 0, 0)
    assert len(_stored(db)) == 149


def test_sdk_isolates_an_event_the_server_answers_500_for(caplog):
    """A server bug tripped by one event (the old PostgreSQL NUL 500): the other events arrive, the
    event is rejected once the server has taken others; 503s are retried, never split."""
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in json.loads(request.content)["events"]]
        seen.append(ids)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "database unavailable"})
        if "poison" in ids:
            return httpx.Response(500, text="Internal Server Error")
        return httpx.Response(200, json={"accepted": len(ids), "duplicates": 0, "rejected": []})

    with caplog.at_level(logging.WARNING, logger="llm_incident.client"):
        logger = EventLogger("http://llm-incident.test", "key-1", transport=httpx.MockTransport(handler),
                             batch_size=64, flush_interval=0.02, max_retry_backoff=0.01)
        for i in range(64):
            logger.log({"event_id": "poison" if i == 40 else f"ok-{i}", "route": "r"})
        assert logger.flush(10) is True
        stats = logger.stats
        logger.close()
    assert (stats.sent, stats.rejected, stats.queued) == (63, 1, 0)
    assert len(seen[0]) == len(seen[1]) == 64  # the 503 was retried whole
    assert "server answers HTTP 500 for it while it takes others" in caplog.text
