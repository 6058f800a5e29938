"""`POST /v1/traces` through the running server, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Sequence

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from llm_incident.events.models import Event
from tests.support import TEST_KEY

PROTOBUF = {"Content-Type": "application/x-protobuf"}
START = 1_764_165_600_000_000_000  # 2025-11-26T14:00:00Z
TRACE_HEX = "5b8efff798038103d269b633813fc60c"


def _rows(db) -> list[Event]:
    with db.read() as session:
        return list(session.exec(select(Event).order_by(Event.event_id)))


class RecordingExporter(SpanExporter):
    """The real OTLP/HTTP exporter, remembering what each export returned."""

    def __init__(self, inner: OTLPSpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def _sdk_provider(server: str, **exporter_args) -> tuple[TracerProvider, RecordingExporter]:
    resource = Resource.create({"service.name": "support-bot",
                                "deployment.environment.name": "staging",
                                "llm_incident.route": "support.reply",
                                "llm_incident.region": "eu-west-1"})
    exporter = RecordingExporter(OTLPSpanExporter(
        endpoint=f"{server}/v1/traces", headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=10, **exporter_args))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _span_key(span) -> str:
    ctx = span.get_span_context()
    return f"{ctx.trace_id:032x}-{ctx.span_id:016x}"


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_real_sdk_exporter_protobuf_gen_ai_spans_become_events(server, db, compression):
    provider, exporter = _sdk_provider(server, compression=compression)
    tracer = provider.get_tracer("llm-app")
    with tracer.start_as_current_span("POST /reply", start_time=START) as request_span:
        chat = tracer.start_span("chat gpt-4o-mini", start_time=START + 1_000_000, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
            "gen_ai.response.finish_reasons": ("stop",), "llm_incident.customer_tier": "pro",
            "llm_incident.prompt_version": "v12"})
        chat.end(end_time=START + 851_000_000)
        failed = tracer.start_span("chat claude", start_time=START + 900_000_000, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5", "error.type": "overloaded_error",
            "http.response.status_code": 529, "llm_incident.route": "support.fallback",
            "llm_incident.attempt": 2})
        failed.set_status(Status(StatusCode.ERROR, "provider overloaded"))
        failed.end(end_time=START + 1_150_000_000)
        request_span.end(end_time=START + 1_200_000_000)
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert exporter.results == [SpanExportResult.SUCCESS] * 3  # chat, failed, request span
    rows = {row.event_id: row for row in _rows(db)}
    assert set(rows) == {_span_key(chat), _span_key(failed)}  # the HTTP span is ignored

    ok = rows[_span_key(chat)]
    assert (ok.route, ok.env, ok.region, ok.model, ok.provider) == (
        "support.reply", "staging", "eu-west-1", "gpt-4o-mini", "openai")
    assert (ok.tokens_in, ok.tokens_out, ok.duration_ms, ok.status, ok.error_code) == (
        1000, 200, 850.0, "ok", None)
    assert (ok.customer_tier, ok.prompt_version, ok.attempt) == ("pro", "v12", 1)
    assert ok.ts.isoformat() == "2025-11-26T14:00:00.001000+00:00"
    assert ok.priced and ok.cost_usd > 0
    assert ok.meta == {"span_name": "chat gpt-4o-mini", "gen_ai.operation.name": "chat",
                       "gen_ai.response.finish_reasons": ["stop"]}

    bad = rows[_span_key(failed)]
    assert (bad.route, bad.status, bad.error_code, bad.attempt, bad.duration_ms) == (
        "support.fallback", "error", "overloaded_error", 2, 250.0)
    assert bad.meta["http.response.status_code"] == 529
    assert bad.meta["status_message"] == "provider overloaded"


def _attrs(values: dict) -> list[dict]:
    out = []
    for key, value in values.items():
        kind = "intValue" if isinstance(value, int) else "stringValue"
        out.append({"key": key, "value": {kind: str(value) if kind == "intValue" else value}})
    return out


def _json_request(spans: list[dict], resource: dict | None = None) -> dict:
    res = {"service.name": "search-api", "deployment.environment.name": "prod", **(resource or {})}
    return {"resourceSpans": [{"resource": {"attributes": _attrs(res)},
                               "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}]}]}


def _json_span(span_id: str, attrs: dict, *, trace_id: str = TRACE_HEX, **extra) -> dict:
    return {"traceId": trace_id, "spanId": span_id, "name": f"span {span_id}", "kind": 3,
            "startTimeUnixNano": str(START), "endTimeUnixNano": str(START + 400_000_000),
            "attributes": _attrs(attrs), **extra}


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5}


def test_json_with_hex_ids(api, db):
    body = _json_request([_json_span("00f067aa0ba902b7", CHAT, status={"code": 1}),
                          _json_span("00f067aa0ba902b8", {"http.route": "/search"})])
    response = api.post("/v1/traces", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (row,) = _rows(db)
    assert row.event_id == f"{TRACE_HEX}-00f067aa0ba902b7"
    assert (row.route, row.env, row.model, row.tokens_in, row.tokens_out, row.duration_ms) == (
        "search-api", "prod", "gpt-4o-mini", 10, 5, 400.0)


def test_json_with_base64_ids_stores_the_same_event_id(api, db):
    trace_b64 = base64.b64encode(bytes.fromhex(TRACE_HEX)).decode()
    span_b64 = base64.b64encode(bytes.fromhex("00f067aa0ba902b7")).decode()
    body = _json_request([_json_span(span_b64, CHAT, trace_id=trace_b64)])
    assert api.post("/v1/traces", json=body).json() == {}
    assert [r.event_id for r in _rows(db)] == [f"{TRACE_HEX}-00f067aa0ba902b7"]


def test_gzip_json_body(api, db):
    raw = json.dumps(_json_request([_json_span("00000000000000a1", CHAT)])).encode()
    response = api.post("/v1/traces", content=gzip.compress(raw),
                        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {}
    assert [r.event_id for r in _rows(db)] == [f"{TRACE_HEX}-00000000000000a1"]


def test_legacy_attribute_names(api, db):
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
             "gen_ai.request.model": "claude-3-5-haiku"}
    body = _json_request([_json_span("00000000000000b1", attrs)])
    body["resourceSpans"][0]["resource"]["attributes"] = _attrs(
        {"service.name": "legacy-app", "deployment.environment": "canary"})
    assert api.post("/v1/traces", json=body).json() == {}
    (row,) = _rows(db)
    assert (row.provider, row.model, row.env, row.route) == (
        "anthropic", "claude-3-5-haiku", "canary", "legacy-app")


def test_error_span_from_http_status_and_span_status(api, db):
    body = _json_request([
        _json_span("00000000000000c1", {**CHAT, "http.response.status_code": 429}),
        _json_span("00000000000000c2", CHAT, status={"code": 2, "message": "stream reset"}),
    ])
    assert api.post("/v1/traces", json=body).json() == {}
    first, second = _rows(db)
    assert (first.status, first.error_code) == ("error", "429")
    assert (second.status, second.error_code) == ("error", None)
    assert second.meta["status_message"] == "stream reset"


def _protobuf_request(spans: list[dict]) -> bytes:
    """The JSON helpers' request, re-encoded as binary protobuf."""
    payload = _json_request(spans)
    for span in payload["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["traceId"] = base64.b64encode(bytes.fromhex(span["traceId"])).decode()
        span["spanId"] = base64.b64encode(bytes.fromhex(span["spanId"])).decode()
    return json_format.ParseDict(payload, ExportTraceServiceRequest()).SerializeToString()


def test_invalid_span_is_a_partial_success_in_protobuf(api, db):
    body = _protobuf_request([
        _json_span("00000000000000d1", CHAT),
        _json_span("00000000000000d2", {**CHAT, "gen_ai.usage.input_tokens": -4}),
        _json_span("00000000000000d3", {"db.system": "postgresql"}),
    ])
    response = api.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 1
    message = reply.partial_success.error_message
    assert message.startswith("1 of 2 gen_ai spans rejected: span 'span 00000000000000d2'")
    assert "tokens_in: Input should be greater than or equal to 0" in message
    assert [r.event_id for r in _rows(db)] == [f"{TRACE_HEX}-00000000000000d1"]


def test_all_accepted_protobuf_reply_is_empty(api, db):
    body = _protobuf_request([_json_span("00000000000000e1", CHAT)])
    response = api.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200 and response.content == b""
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert len(_rows(db)) == 1


def test_partial_success_in_json_summarises_and_counts_every_rejection(api, db):
    bad = [_json_span(f"00000000000000{i:02x}", {**CHAT, "gen_ai.usage.output_tokens": -1})
           for i in range(1, 7)]
    zero_ids = _json_span("0000000000000000", CHAT, trace_id="0" * 32)
    body = _json_request([*bad, zero_ids, _json_span("00000000000000ff", CHAT)])
    reply = api.post("/v1/traces", json=body).json()
    partial = reply["partialSuccess"]
    assert partial["rejectedSpans"] == "7"  # proto3 JSON renders int64 as a string
    assert partial["errorMessage"].startswith("7 of 8 gen_ai spans rejected: span 'span ")
    assert "trace_id must be 16 and span_id 8 bytes" in partial["errorMessage"]
    assert partial["errorMessage"].endswith("| and 2 more")
    assert [r.event_id for r in _rows(db)] == [f"{TRACE_HEX}-00000000000000ff"]


def _otlp_counts(api) -> dict[str, float]:
    text = api.get("/metrics").text
    return {sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "llm_incident_events_ingested"
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["source"] == "otlp"}


def test_resent_span_is_a_counted_duplicate_never_a_second_row(api, db):
    body = _json_request([_json_span("00000000000000f1", CHAT)])
    assert api.post("/v1/traces", json=body).json() == {}
    assert api.post("/v1/traces", json=body).json() == {}  # a duplicate is not a rejection
    assert len(_rows(db)) == 1
    assert _otlp_counts(api) == {"accepted": 1.0, "duplicate": 1.0}


def test_only_non_gen_ai_spans_store_nothing(api, db):
    body = _json_request([_json_span("0000000000000101", {"http.route": "/health"})])
    assert api.post("/v1/traces", json=body).json() == {}
    assert _rows(db) == []


def test_requires_a_valid_key(server, db):
    body = _protobuf_request([_json_span("0000000000000201", CHAT)])
    missing = httpx.post(f"{server}/v1/traces", content=body, headers=PROTOBUF)
    wrong = httpx.post(f"{server}/v1/traces", content=body,
                       headers={**PROTOBUF, "Authorization": "Bearer nope"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert _rows(db) == []


def test_sdk_exporter_without_key_fails_and_stores_nothing(server, db):
    exporter = RecordingExporter(OTLPSpanExporter(endpoint=f"{server}/v1/traces", timeout=10))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("chat", attributes={"gen_ai.operation.name": "chat"}).end()
    provider.shutdown()
    assert exporter.results == [SpanExportResult.FAILURE]
    assert _rows(db) == []


@pytest.mark.parametrize(("content_type", "body", "status", "error"), [
    ("application/x-protobuf", b"not a protobuf", 400, "malformed OTLP protobuf"),
    ("application/json", b'{"resourceSpans": [', 400, "malformed JSON"),
    ("application/json", b'{"resourceSpans": 5}', 400, "malformed OTLP JSON"),
    ("text/plain", b"hello", 415, "unsupported Content-Type 'text/plain'"),
])
def test_bad_bodies_are_refused(api, db, content_type, body, status, error):
    response = api.post("/v1/traces", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json()["error"].startswith(error)
    assert _rows(db) == []
