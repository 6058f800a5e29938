"""OTLP trace requests → event dicts for `ingest_events` (pure: no HTTP, no database).

Only spans carrying `gen_ai.operation.name` become events; every other span is ignored.
"span, resource" means the span's attribute wins over the resource's.

| event field       | attribute (first present wins)                                             |
|-------------------|----------------------------------------------------------------------------|
| `event_id`        | `{trace_id hex}-{span_id hex}`                                             |
| `ts`              | span start time (UTC)                                                      |
| `duration_ms`     | span end − start                                                           |
| `route`           | `llm_incident.route` (span, resource), else resource `service.name`        |
| `env`             | `deployment.environment.name`, `deployment.environment` (span, resource)   |
| `model`           | span `gen_ai.response.model`, `gen_ai.request.model`                       |
| `provider`        | span `gen_ai.provider.name`, `gen_ai.system`                               |
| `tokens_in/out`   | span `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens`            |
| `status`          | `llm_incident.status` (span, resource); else `error` when the span has     |
|                   | `error.type`, `http.response.status_code` (legacy `http.status_code`)      |
|                   | ≥ 400 or status code ERROR; else `ok`                                      |
| `error_code`      | span `error.type`, else the HTTP status code when ≥ 400                    |
| `region`          | `llm_incident.region`, else `cloud.region` (span, resource)                |
| `customer_tier`   | `llm_incident.customer_tier` (span, resource); likewise `prompt_id`,       |
|                   | `prompt_version`, `attempt`, `contains_banned` from `llm_incident.<field>` |
| `metadata`        | `span_name`, span `gen_ai.operation.name`, `gen_ai.request.model` (when it |
|                   | differs from `model`), `gen_ai.request.max_tokens`, `gen_ai.response.id`,  |
|                   | `gen_ai.response.finish_reasons`, `http.response.status_code`,             |
|                   | `status_message` (error spans)                                             |

OTLP/JSON quirks accepted: hex or base64 ids, enum numbers or names, 64-bit integers as strings,
unknown fields ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
_ID_SIZES = {
    "traceId": TRACE_ID_BYTES, "trace_id": TRACE_ID_BYTES,
    "spanId": SPAN_ID_BYTES, "span_id": SPAN_ID_BYTES,
    "parentSpanId": SPAN_ID_BYTES, "parent_span_id": SPAN_ID_BYTES,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX = frozenset(string.hexdigits)
_TEXT_MAX = 200
_LIST_MAX = 10
_META_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.request.max_tokens",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
)
_PASSTHROUGH = ("customer_tier", "prompt_id", "prompt_version", "attempt", "contains_banned")


class OtlpDecodeError(ValueError):
    """The body is not an OTLP `ExportTraceServiceRequest` in the claimed encoding."""


@dataclass
class SpanConversion:
    """Events for the gen_ai spans of one request, with what could not be converted."""

    events: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # span name per event, for messages
    rejected: list[str] = field(default_factory=list)  # gen_ai spans unusable before validation
    ignored: int = 0  # spans without gen_ai.operation.name

    @property
    def gen_ai_spans(self) -> int:
        return len(self.events) + len(self.rejected)


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse the binary protobuf encoding."""
    try:
        return ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(f"malformed OTLP protobuf: {exc}") from None


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse the OTLP/JSON encoding (hex or base64 ids, unknown fields ignored)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OtlpDecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise OtlpDecodeError("malformed OTLP JSON: expected an object with resourceSpans")
    try:
        _ids_to_base64(payload)
        message = ExportTraceServiceRequest()
        return json_format.ParseDict(payload, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise OtlpDecodeError(f"malformed OTLP JSON: {exc}") from None


def _children(parent: Any, *keys: str) -> Iterable[dict[str, Any]]:
    if not isinstance(parent, dict):
        return ()
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return (item for item in value if isinstance(item, dict))
    return ()


def _ids_to_base64(payload: dict[str, Any]) -> None:
    """Rewrite span/link ids in place to the base64 that protobuf's JSON mapping expects."""
    for resource_spans in _children(payload, "resourceSpans", "resource_spans"):
        for scope_spans in _children(resource_spans, "scopeSpans", "scope_spans"):
            for span in _children(scope_spans, "spans"):
                for holder in (span, *_children(span, "links")):
                    for key, size in _ID_SIZES.items():
                        if isinstance(holder.get(key), str):
                            raw = id_bytes(holder[key], size)
                            holder[key] = base64.b64encode(raw).decode("ascii")


def id_bytes(text: str, size: int) -> bytes:
    """An id from OTLP/JSON: hex of `size` bytes, else (padded or not, URL-safe or not) base64."""
    text = text.strip()
    if len(text) == 2 * size and _HEX.issuperset(text):
        return bytes.fromhex(text)
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        raise ValueError(f"id {text[:40]!r} is neither {2 * size} hex digits nor base64") from None


def attribute_value(value: AnyValue) -> Any:
    """The Python value of an OTLP `AnyValue` (bytes as hex)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [attribute_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: attribute_value(kv.value) for kv in pairs}


def _pick(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any) -> Any:
    """Numbers as text (ids and versions are often numeric); anything else unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _small(value: Any) -> Any:
    if isinstance(value, str):
        return value[:_TEXT_MAX]
    if isinstance(value, list):
        return [_small(v) for v in value[:_LIST_MAX]]
    if isinstance(value, dict):
        return None  # nested maps have no place in compact metadata
    return value


def _http_status(attrs: Mapping[str, Any]) -> int | None:
    value = _pick(attrs, "http.response.status_code", "http.status_code")
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _timestamp(nanos: int) -> datetime | None:
    return _EPOCH + timedelta(microseconds=nanos // 1000) if nanos else None


def _valid_ids(span: Span) -> bool:
    return (len(span.trace_id) == TRACE_ID_BYTES and any(span.trace_id)
            and len(span.span_id) == SPAN_ID_BYTES and any(span.span_id))


def span_event(span: Span, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The event dict of one gen_ai span (unvalidated; `EventIn` has the last word)."""
    own = attributes(span.attributes)
    merged = {**resource, **own}
    model = _pick(own, "gen_ai.response.model", "gen_ai.request.model")
    error_type = _pick(own, "error.type")
    http_status = _http_status(own)
    http_failed = http_status is not None and http_status >= 400
    failed = (error_type is not None or http_failed
              or span.status.code == Status.STATUS_CODE_ERROR)

    meta: dict[str, Any] = {"span_name": span.name[:_TEXT_MAX]}
    for key in _META_KEYS:
        value = _small(own.get(key))
        if value is not None:
            meta[key] = value
    request_model = own.get("gen_ai.request.model")
    if request_model is not None and request_model != model:
        meta["gen_ai.request.model"] = _small(request_model)
    if http_status is not None:
        meta["http.response.status_code"] = http_status
    if span.status.code == Status.STATUS_CODE_ERROR and span.status.message:
        meta["status_message"] = span.status.message[:_TEXT_MAX]

    event: dict[str, Any] = {
        "event_id": f"{span.trace_id.hex()}-{span.span_id.hex()}",
        "ts": _timestamp(span.start_time_unix_nano),
        "route": _text(_pick(merged, "llm_incident.route") or _pick(resource, "service.name")),
        "env": _text(_pick(merged, "deployment.environment.name", "deployment.environment")),
        "model": _text(model),
        "provider": _text(_pick(own, "gen_ai.provider.name", "gen_ai.system")),
        "region": _text(_pick(merged, "llm_incident.region", "cloud.region")),
        "tokens_in": own.get("gen_ai.usage.input_tokens"),
        "tokens_out": own.get("gen_ai.usage.output_tokens"),
        "status": _pick(merged, "llm_incident.status") or ("error" if failed else "ok"),
        "error_code": _text(error_type) or (str(http_status) if http_failed else None),
        "metadata": meta,
    }
    if span.start_time_unix_nano and span.end_time_unix_nano:
        event["duration_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    for name in _PASSTHROUGH:
        event[name] = _pick(merged, f"llm_incident.{name}")
    for name in ("customer_tier", "prompt_id", "prompt_version"):
        event[name] = _text(event[name])
    return {k: v for k, v in event.items() if v is not None}


def events_from_request(request: ExportTraceServiceRequest) -> SpanConversion:
    """Events for every span with `gen_ai.operation.name`; other spans are counted as ignored."""
    out = SpanConversion()
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if not any(kv.key == "gen_ai.operation.name" for kv in span.attributes):
                    out.ignored += 1
                elif not _valid_ids(span):
                    out.rejected.append(
                        f"span {span.name[:_TEXT_MAX]!r}: trace_id must be {TRACE_ID_BYTES} and "
                        f"span_id {SPAN_ID_BYTES} bytes, not all zero"
                    )
                else:
                    out.events.append(span_event(span, resource))
                    out.labels.append(span.name[:_TEXT_MAX])
    return out
