"""Per-key request limits: a token bucket on ingest and a cap on concurrent control long-polls.

A key is told apart by a hash of the bearer token it sent. Both limits answer 429 with `Retry-After`, which
the SDK honours. The state lives in the process (one bucket per key per replica), built from the settings on
first use: `LLM_INCIDENT_INGEST_RATE` requests/s with bursts of `LLM_INCIDENT_INGEST_BURST`, and
`LLM_INCIDENT_MAX_LONG_POLLS_PER_KEY` concurrent `?wait=` long-polls.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from llm_incident.api.deps import ApiError

_STATE = "llm_incident_limits"
_MAX_BUCKETS = 10_000


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` is 0 when a token was taken, else the seconds until one is
    due."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(init=False)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.tokens, self.stamp = self.burst, self.clock()

    def take(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class KeyLimits:
    """Ingest buckets and long-poll counts per key identity (thread-safe)."""

    def __init__(self, ingest_rate: float, ingest_burst: int, max_long_polls: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ingest_rate, self.ingest_burst, self.max_long_polls = ingest_rate, ingest_burst, max_long_polls
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._polls: dict[str, int] = {}

    def ingest_wait(self, key: str) -> float:
        """0 when `key` may ingest now, else the seconds until it may."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _MAX_BUCKETS:  # unknown tokens count too: stay bounded
                    self._buckets.pop(next(iter(self._buckets)))
                bucket = self._buckets[key] = TokenBucket(self.ingest_rate, self.ingest_burst, self.clock)
            return bucket.take()

    def open_poll(self, key: str) -> bool:
        """Count one more long-poll for `key`; False (nothing counted) when it already holds the maximum."""
        with self._lock:
            held = self._polls.get(key, 0)
            if held >= self.max_long_polls:
                return False
            self._polls[key] = held + 1
            return True

    def close_poll(self, key: str) -> None:
        with self._lock:
            held = self._polls.get(key, 0) - 1
            if held > 0:
                self._polls[key] = held
            else:
                self._polls.pop(key, None)

    def polls(self, key: str) -> int:
        with self._lock:
            return self._polls.get(key, 0)


INGEST_PATHS = frozenset({"/v1/events", "/v1/traces", "/v1/changes"})
LONG_POLL_PATHS = ("/v1/controls", "/v1/routes/{route}/controls")
TOO_MANY = {"description": "too many requests for this API key (ingest rate, or concurrent long-polls); "
                           "retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"description": "seconds to wait before retrying",
                                        "schema": {"type": "integer", "minimum": 1}}}}


def key_limits(app: Any) -> KeyLimits:
    """The app's `KeyLimits`, built from its settings on first use."""
    limits = getattr(app.state, _STATE, None)
    if limits is None:
        settings = app.state.services.settings
        limits = KeyLimits(settings.ingest_rate, settings.ingest_burst, settings.max_long_polls_per_key)
        setattr(app.state, _STATE, limits)
    return limits


def key_identity(headers: Headers) -> str | None:
    """A stable, non-secret name for the request's bearer token; None without one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return hashlib.sha256(token.strip().encode()).hexdigest()[:32]


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class IngestRateLimit:
    """Pure ASGI middleware: 429 + Retry-After for `POST` to an ingest path past the key's token bucket.

    It runs before routing and auth, so a flood is refused before its body is read or its key looked up;
    requests without a bearer token pass (auth answers them 401)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in INGEST_PATHS:
            key = key_identity(Headers(scope=scope))
            if key is not None:
                limits = key_limits(scope["app"])
                wait = limits.ingest_wait(key)
                if wait > 0:
                    message = (f"ingest rate limit for this API key exceeded ({limits.ingest_rate:g} "
                               f"requests/s, burst {limits.ingest_burst}); retry in {wait:.1f} s")
                    answer = JSONResponse({"error": message}, status_code=429, headers=retry_after(wait))
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)


@asynccontextmanager
async def long_poll_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of the key's long-poll slots while inside; 429 + Retry-After when it holds them all."""
    limits, key = key_limits(request.app), key_identity(request.headers) or ""
    if not limits.open_poll(key):
        raise ApiError(429, f"this API key already holds {limits.max_long_polls} waiting long-polls "
                            "(LLM_INCIDENT_MAX_LONG_POLLS_PER_KEY); retry later or poll without ?wait=",
                       retry_after(1))
    try:
        yield
    finally:
        limits.close_poll(key)


def install_limits(app: FastAPI) -> None:
    """Add the ingest rate limit to `app` and declare its 429s (and the long-poll cap's) in the OpenAPI
    document. Call after `install_docs`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                if (method == "post" and path in INGEST_PATHS) or (method == "get" and path in LONG_POLL_PATHS):
                    error = operation.get("responses", {}).get("401", {}).get("content")
                    operation["responses"]["429"] = {**TOO_MANY, **({"content": error} if error else {})}
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(IngestRateLimit)
