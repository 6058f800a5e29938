"""Shared pieces of the HTTP API: the service container, scoped API-key auth, bounded body reading."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic_core import from_json
from starlette.concurrency import run_in_threadpool

from llm_incident.apikeys import SCOPES, KeyChecker, KeyIdentity
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


bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key from LLM_INCIDENT_API_KEYS or `llm-incident keys create`.")


def needs(scope: str) -> Any:
    """`Depends(...)` for an endpoint that needs `scope`: 401 unless `Authorization: Bearer <key>`
    names a valid key, 403 naming the scope when the key lacks it (declared in the OpenAPI document
    as the `apiKey` bearer scheme). The key's identity is left in `request.state.api_key`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def require_scope(
        request: Request, _declared: HTTPAuthorizationCredentials | None = Security(bearer)
    ) -> KeyIdentity:
        svc = services(request)
        header = request.headers.get("authorization", "")
        method, _, key = header.partition(" ")
        if method.lower() != "bearer" or not key.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})

        def check() -> KeyIdentity | None:
            with svc.db.read() as session:
                return svc.keys.identify(session, key.strip())

        identity = await run_in_threadpool(check)
        if identity is None:
            raise ApiError(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
        if scope not in identity.scopes:
            held = ", ".join(s for s in SCOPES if s in identity.scopes) or "none"
            raise ApiError(403, f"API key {identity.name!r} (scopes: {held}) cannot do this: "
                                f"it needs the `{scope}` scope")
        request.state.api_key = identity
        return identity

    require_scope.scope = scope  # type: ignore[attr-defined]  # read by the scope matrix test
    return Depends(require_scope)


def required_scope(route: APIRoute) -> str | None:
    """The scope `route` declares through `needs`, None for an open endpoint."""
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        found = getattr(dependant.call, "scope", None)
        if isinstance(found, str):
            return found
        pending.extend(dependant.dependencies)
    return None


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


_WHERE = re.compile(r"^(?P<what>.*) at line (?P<line>\d+) column (?P<col>\d+)$")


def parse_json(body: bytes) -> Any:
    """Strict JSON from bytes (no NaN/Infinity, no lone surrogates); 400 that says where it breaks."""
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        found = _WHERE.match(str(exc))
        if found is None:
            raise ApiError(400, f"malformed JSON: {exc}") from None
        raise ApiError(400, f"malformed JSON at line {found['line']} column {found['col']}: "
                            f"{found['what']}") from None


def _declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameter names `route` declares, sub-dependencies included (cached on the route)."""
    names = getattr(route, "_llm_incident_query", None)
    if names is None:
        found: set[str] = set()
        pending: list[Dependant] = [route.dependant]
        while pending:
            dependant = pending.pop()
            found.update(param.alias for param in dependant.query_params)
            pending.extend(dependant.dependencies)
        names = route._llm_incident_query = frozenset(found)  # type: ignore[attr-defined]
    return names


def allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document declares at this request's path, plus HEAD where GET is
    (Starlette's own 405 names only the methods of the first route that matched the path)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods.update(method.upper() for method in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def check_params(request: Request) -> None:
    """App-wide dependency: 400 for a query parameter the endpoint does not declare (naming it),
    and for NUL characters in path or query values (PostgreSQL cannot store or compare them)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    unknown = sorted(set(request.query_params) - _declared_query(route))
    if unknown:
        known = ", ".join(sorted(_declared_query(route))) or "none"
        raise ApiError(400, f"unknown query parameter {unknown[0]!r} (this endpoint takes: {known})")
    values = [*request.path_params.values(), *request.query_params.values()]
    if any("\x00" in str(v) for v in values):
        raise ApiError(400, "path and query values cannot contain NUL (%00) characters")

