"""OTLP request → event dicts, and the OTLP/JSON decoder, by value."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from pydantic import ValidationError

from llm_incident.events.otlp import (
    OtlpDecodeError,
    decode_json,
    decode_protobuf,
    events_from_request,
    id_bytes,
)
from llm_incident.events.schema import EventIn

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
START = 1_764_165_600_000_000_000  # 2025-11-26T14:00:00Z
ERROR = Status.STATUS_CODE_ERROR


def any_value(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(value)))
    return AnyValue(string_value=value)


def kvs(attrs: dict) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def span(attrs: dict, *, name: str = "chat gpt-4o", trace: bytes = TRACE, span_id: bytes = SPAN,
         start: int = START, end: int = START + 1_250_000_000, status: int = 0,
         message: str = "") -> Span:
    return Span(trace_id=trace, span_id=span_id, name=name, start_time_unix_nano=start,
                end_time_unix_nano=end, attributes=kvs(attrs),
                status=Status(code=status, message=message))


def request(*spans: Span, resource: dict | None = None) -> ExportTraceServiceRequest:
    res = Resource(attributes=kvs({"service.name": "support-bot", **(resource or {})}))
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource=res, scope_spans=[ScopeSpans(spans=list(spans))])])


def one_event(attrs: dict, resource: dict | None = None, **span_args) -> dict:
    conversion = events_from_request(request(span(attrs, **span_args), resource=resource))
    assert conversion.rejected == [] and len(conversion.events) == 1
    return conversion.events[0]


GEN_AI = {"gen_ai.operation.name": "chat"}


def test_full_mapping_of_a_gen_ai_span():
    event = one_event(
        {**GEN_AI, "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
         "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 1200,
         "gen_ai.usage.output_tokens": 300, "gen_ai.request.max_tokens": 512,
         "gen_ai.response.id": "chatcmpl-1", "gen_ai.response.finish_reasons": ["stop"],
         "gen_ai.request.temperature": 0.2, "llm_incident.route": "support.reply",
         "llm_incident.customer_tier": "enterprise", "llm_incident.prompt_id": "reply-v",
         "llm_incident.prompt_version": 7, "llm_incident.attempt": 2,
         "llm_incident.contains_banned": True},
        resource={"deployment.environment.name": "staging", "cloud.region": "eu-west-1"},
    )
    assert event == {
        "event_id": "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174",
        "ts": datetime(2025, 11, 26, 14, 0, tzinfo=timezone.utc),
        "duration_ms": 1250.0,
        "route": "support.reply",
        "env": "staging",
        "model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "region": "eu-west-1",
        "tokens_in": 1200,
        "tokens_out": 300,
        "status": "ok",
        "customer_tier": "enterprise",
        "prompt_id": "reply-v",
        "prompt_version": "7",
        "attempt": 2,
        "contains_banned": True,
        "metadata": {
            "span_name": "chat gpt-4o",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.max_tokens": 512,
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.response.finish_reasons": ["stop"],
        },
    }
    assert EventIn.model_validate(event).ts.utcoffset().total_seconds() == 0


def test_legacy_names_and_fallbacks():
    event = one_event({**GEN_AI, "gen_ai.request.model": "claude-sonnet-4",
                       "gen_ai.system": "anthropic"},
                      resource={"deployment.environment": "prod-eu"})
    assert (event["model"], event["provider"], event["env"], event["route"]) == (
        "claude-sonnet-4", "anthropic", "prod-eu", "support-bot")
    assert "gen_ai.request.model" not in event["metadata"]  # same as the stored model


def test_new_names_win_over_legacy_ones():
    event = one_event({**GEN_AI, "gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "old"},
                      resource={"deployment.environment.name": "new",
                                "deployment.environment": "old"})
    assert (event["provider"], event["env"]) == ("aws.bedrock", "new")


@pytest.mark.parametrize(("span_attrs", "resource", "route"), [
    ({"llm_incident.route": "from.span"}, {"llm_incident.route": "from.resource"}, "from.span"),
    ({}, {"llm_incident.route": "from.resource"}, "from.resource"),
    ({}, {}, "support-bot"),
    ({"service.name": "span-level-service-name-is-not-used"}, {}, "support-bot"),
])
def test_route_precedence(span_attrs, resource, route):
    assert one_event({**GEN_AI, **span_attrs}, resource=resource)["route"] == route


def test_absent_optional_fields_are_left_to_the_schema_defaults():
    event = one_event(dict(GEN_AI))
    assert set(event) == {"event_id", "ts", "duration_ms", "route", "status", "metadata"}
    stored = EventIn.model_validate(event)
    assert (stored.env, stored.attempt, stored.contains_banned) == ("prod", 1, False)


@pytest.mark.parametrize(("attrs", "status", "message", "expected"), [
    ({"error.type": "RateLimitError"}, 0, "", ("error", "RateLimitError")),
    ({"http.response.status_code": 503}, 0, "", ("error", "503")),
    ({"http.response.status_code": "429"}, 0, "", ("error", "429")),
    ({"http.status_code": 500}, 0, "", ("error", "500")),
    ({"error.type": "timeout", "http.response.status_code": 504}, ERROR, "", ("error", "timeout")),
    ({}, ERROR, "upstream closed", ("error", None)),
    ({"http.response.status_code": 200}, Status.STATUS_CODE_OK, "", ("ok", None)),
    ({"llm_incident.status": "flagged"}, 0, "", ("flagged", None)),
])
def test_status_and_error_code(attrs, status, message, expected):
    event = one_event({**GEN_AI, **attrs}, status=status, message=message)
    assert (event["status"], event.get("error_code")) == expected


def test_error_details_land_in_metadata():
    event = one_event({**GEN_AI, "http.response.status_code": 429}, status=ERROR,
                      message="x" * 500)
    assert event["metadata"]["http.response.status_code"] == 429
    assert event["metadata"]["status_message"] == "x" * 200


def test_metadata_stays_small():
    event = one_event({**GEN_AI, "gen_ai.response.id": "r" * 1000,
                       "gen_ai.response.finish_reasons": ["stop"] * 50,
                       "gen_ai.input.messages": "a very long prompt " * 100,
                       "gen_ai.usage.input_tokens": 5})
    meta = event["metadata"]
    assert len(meta["gen_ai.response.id"]) == 200
    assert len(meta["gen_ai.response.finish_reasons"]) == 10
    assert "gen_ai.input.messages" not in meta and "gen_ai.usage.input_tokens" not in meta


def test_only_spans_with_gen_ai_operation_name_become_events():
    req = request(
        span({"http.route": "/reply"}, name="POST /reply", span_id=b"\x01" * 8),
        span({**GEN_AI}, span_id=b"\x02" * 8),
        span({"gen_ai.request.model": "gpt-4o"}, name="no operation", span_id=b"\x03" * 8),
        resource={"gen_ai.operation.name": "chat"},  # on the resource it does not count
    )
    req.resource_spans.append(ResourceSpans(scope_spans=[ScopeSpans(spans=[
        span({**GEN_AI}, span_id=b"\x04" * 8)])]))
    conversion = events_from_request(req)
    assert [e["event_id"][-16:] for e in conversion.events] == ["02" * 8, "04" * 8]
    assert conversion.ignored == 2 and conversion.gen_ai_spans == 2
    assert conversion.events[1].get("route") is None  # no service.name: validation will reject it


@pytest.mark.parametrize(("trace", "span_id"), [
    (b"", SPAN), (TRACE, b""), (bytes(16), SPAN), (TRACE, bytes(8)), (TRACE[:15], SPAN),
])
def test_spans_with_unusable_ids_are_rejected_not_ignored(trace, span_id):
    conversion = events_from_request(request(span(dict(GEN_AI), trace=trace, span_id=span_id)))
    assert conversion.events == []
    assert conversion.rejected == [
        "span 'chat gpt-4o': trace_id must be 16 and span_id 8 bytes, not all zero"]


def test_bad_values_pass_through_for_validation_to_reject():
    event = one_event({**GEN_AI, "gen_ai.usage.input_tokens": -3}, end=START - 1_000_000)
    assert (event["tokens_in"], event["duration_ms"]) == (-3, -1.0)
    with pytest.raises(ValidationError) as info:
        EventIn.model_validate(event)
    assert {e["loc"][0] for e in info.value.errors()} == {"tokens_in", "duration_ms"}


def test_unset_times_leave_ts_and_duration_out():
    event = one_event(dict(GEN_AI), start=0, end=0)
    assert "ts" not in event and "duration_ms" not in event


def test_timestamp_keeps_microseconds():
    event = one_event(dict(GEN_AI), start=START + 123_456_789, end=START + 223_456_789)
    assert event["ts"] == datetime(2025, 11, 26, 14, 0, 0, 123456, tzinfo=timezone.utc)
    assert event["duration_ms"] == 100.0


# --- OTLP/JSON decoding -------------------------------------------------------------------------

def _json_body(trace_id: str, span_id: str, **span_extra) -> bytes:
    body = {"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "support-bot"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "parentSpanId": "",
            "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(START), "endTimeUnixNano": START + 1_250_000_000,
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 300}},
            ],
            "status": {"code": 2, "message": "boom"},
            "someFutureField": {"x": 1},
            **span_extra,
        }]}],
    }]}
    return json.dumps(body).encode()


def _expected_message() -> ExportTraceServiceRequest:
    req = request(span({**GEN_AI, "gen_ai.usage.input_tokens": 1200,
                        "gen_ai.usage.output_tokens": 300}, status=ERROR, message="boom"))
    only = req.resource_spans[0].scope_spans[0]
    only.scope.name = "test"
    only.spans[0].kind = Span.SPAN_KIND_CLIENT
    return req


@pytest.mark.parametrize(("trace_id", "span_id"), [
    (TRACE.hex(), SPAN.hex()),
    (TRACE.hex().upper(), SPAN.hex().upper()),
    (base64.b64encode(TRACE).decode(), base64.b64encode(SPAN).decode()),
    (base64.urlsafe_b64encode(TRACE).decode().rstrip("="),
     base64.urlsafe_b64encode(SPAN).decode().rstrip("=")),
])
def test_json_ids_hex_or_base64_decode_to_the_same_message(trace_id, span_id):
    assert decode_json(_json_body(trace_id, span_id)) == _expected_message()


def test_json_enum_names_and_snake_case_keys_are_accepted():
    body = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": TRACE.hex(), "span_id": SPAN.hex(), "kind": "SPAN_KIND_CLIENT",
        "status": {"code": "STATUS_CODE_ERROR"}, "links": [{"traceId": TRACE.hex(),
                                                             "spanId": "AQIDBAUGBwg="}]}]}]}]}
    decoded = decode_json(json.dumps(body).encode()).resource_spans[0].scope_spans[0].spans[0]
    assert (decoded.trace_id, decoded.span_id) == (TRACE, SPAN)
    assert decoded.kind == Span.SPAN_KIND_CLIENT and decoded.status.code == ERROR
    assert decoded.links[0].span_id == bytes(range(1, 9))


@pytest.mark.parametrize("body", [
    b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"',
    b'{"resourceSpans": 5}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not an id!"}]}]}]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
])
def test_malformed_json_raises(body):
    with pytest.raises(OtlpDecodeError):
        decode_json(body)


def test_protobuf_round_trip_and_garbage():
    message = _expected_message()
    assert decode_protobuf(message.SerializeToString()) == message
    with pytest.raises(OtlpDecodeError, match="malformed OTLP protobuf"):
        decode_protobuf(b"not a protobuf")


@pytest.mark.parametrize(("text", "size", "raw"), [
    ("00f067aa0ba902b7", 8, bytes.fromhex("00f067aa0ba902b7")),
    ("APBnqgupArc=", 8, bytes.fromhex("00f067aa0ba902b7")),
    ("APBnqgupArc", 8, bytes.fromhex("00f067aa0ba902b7")),
    ("", 8, b""),
    ("abcd", 8, base64.b64decode("abcd")),  # not 16 hex digits: read as base64
])
def test_id_bytes(text, size, raw):
    assert id_bytes(text, size) == raw
