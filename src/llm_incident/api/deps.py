"""Shared pieces of the HTTP API: the service container, API-key auth, bounded body reading."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from llm_incident.apikeys import KeyChecker
from llm_incident.db import Database
from llm_incident.observability import ServiceMetrics
from llm_incident.settings import Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Services:
    """Everything a request handler needs, built once by `create_app`."""

    settings: Settings
    db: Database
    keys: KeyChecker
    metrics: ServiceMetrics
    clock: Callable[[], datetime] = utc_now


class ApiError(Exception):
    """An error answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def services(request: Request) -> Services:
    return request.app.state.services


async def require_api_key(request: Request) -> None:
    """FastAPI dependency: 401 unless `Authorization: Bearer <key>` names a valid key."""
    svc = services(request)
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                       {"WWW-Authenticate": "Bearer"})

    def check() -> bool:
        with svc.db.read() as session:
            return svc.keys.is_valid(session, key.strip())

    if not await run_in_threadpool(check):
        raise ApiError(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, decompressed when gzip/deflate; 413 past `max_bytes` either way."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {int(declared)} bytes; the limit is {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding in ("gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise ApiError(400, f"body is not valid {encoding} data: {exc}") from None
        if len(body) > max_bytes or inflater.unconsumed_tail:
            raise ApiError(413, f"decompressed body exceeds the limit of {max_bytes} bytes")
    elif encoding not in ("identity", ""):
        raise ApiError(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    return body


def parse_json(body: bytes) -> Any:
    """JSON from bytes; 400 that says where the syntax breaks."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed JSON: body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None

