"""`POST /v1/traces`: OTLP/HTTP spans with `gen_ai.*` attributes become events.

Protobuf (`application/x-protobuf`) and JSON (`application/json`) bodies, gzip or not. The reply
is an `ExportTraceServiceResponse` in the request's encoding: empty when every gen_ai span was
accepted (duplicates included), else `partial_success` with `rejected_spans` and why.
Spans without `gen_ai.operation.name` are ignored, never rejected. Errors (400, 401, 413, 415) are
answered as `{"error": message}` JSON like the rest of the API.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from llm_incident.api.deps import ApiError, Services, needs, read_body, services
from llm_incident.api.docs import errors
from llm_incident.api.ingest import ingest_items
from llm_incident.events.ingest import IngestResult
from llm_incident.events.otlp import (
    OtlpDecodeError,
    SpanConversion,
    decode_json,
    decode_protobuf,
    events_from_request,
)

router = APIRouter(tags=["ingest"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
_REASONS_SHOWN = 5


def request_encoding(content_type: str | None) -> str:
    """`PROTOBUF` or `JSON` from a Content-Type header; 415 for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise ApiError(415, f"unsupported Content-Type {media or '(none)'!r}; "
                            f"send {PROTOBUF} or {JSON}")
    return _MEDIA_TYPES[media]


def rejection_summary(conversion: SpanConversion, result: IngestResult) -> str:
    """One line naming the first few rejected spans and why."""
    reasons = list(conversion.rejected)
    for rejection in result.rejected:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in rejection.errors)
        reasons.append(f"span {conversion.labels[rejection.index]!r} "
                       f"({rejection.event_id}): {problems}")
    text = " | ".join(reasons[:_REASONS_SHOWN])
    if len(reasons) > _REASONS_SHOWN:
        text += f" | and {len(reasons) - _REASONS_SHOWN} more"
    return f"{len(reasons)} of {conversion.gen_ai_spans} gen_ai spans rejected: {text}"


def export_spans(svc: Services, body: bytes, encoding: str) -> ExportTraceServiceResponse:
    """Decode, convert and ingest one request; the OTLP answer (400 on a malformed body)."""
    try:
        request = decode_protobuf(body) if encoding == PROTOBUF else decode_json(body)
    except OtlpDecodeError as exc:
        raise ApiError(400, str(exc)) from None
    conversion = events_from_request(request)
    result = ingest_items(svc, conversion.events, "otlp") if conversion.events else IngestResult()
    svc.metrics.count_ingest("otlp", 0, 0, len(conversion.rejected))
    reply = ExportTraceServiceResponse()
    rejected = len(conversion.rejected) + len(result.rejected)
    if rejected:
        reply.partial_success.rejected_spans = rejected
        reply.partial_success.error_message = rejection_summary(conversion, result)
    return reply


def encode_reply(reply: ExportTraceServiceResponse, encoding: str) -> Response:
    if encoding == PROTOBUF:
        return Response(reply.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(reply, indent=None), media_type=JSON)


_EXPORT_REPLY = {"type": "object", "properties": {"partialSuccess": {
    "type": "object", "properties": {"rejectedSpans": {"type": ["string", "integer"]},
                                     "errorMessage": {"type": "string"}}}}}
_BODIES = {
    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
    JSON: {"schema": {"type": "object", "description": "ExportTraceServiceRequest (OTLP/JSON)",
                      "properties": {"resourceSpans": {"type": ["array", "null"], "items": {
                          "description": "ResourceSpans objects; anything else is ignored"}}}}},
}


@router.post("/v1/traces", dependencies=[needs("ingest")], response_class=Response,
             responses={200: {"description": "ExportTraceServiceResponse in the request's encoding",
                              "content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                                          JSON: {"schema": _EXPORT_REPLY}}},
                        **errors(400, 401, 403, 413, 415)},
             openapi_extra={"requestBody": {"required": True, "content": _BODIES}})
async def post_traces(request: Request) -> Response:
    """OTLP/HTTP trace export; gen_ai spans are stored as events like `POST /v1/events`."""
    svc = services(request)
    encoding = request_encoding(request.headers.get("content-type"))
    body = await read_body(request, svc.settings.max_body_bytes)
    reply = await run_in_threadpool(export_spans, svc, body, encoding)
    return encode_reply(reply, encoding)
