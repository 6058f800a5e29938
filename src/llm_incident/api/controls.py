"""Route controls over HTTP: read with ETag / If-None-Match / `?wait=` long-poll, change by compare-and-set.

  GET  /v1/controls[?env=&route=…&wait=]            every route's controls (JSON array)
  GET  /v1/routes/{route}/controls[?env=prod&version=&wait=]
  PUT  /v1/routes/{route}/controls  (POST too)      {"enabled": false, …, "expected_version": 3, "reason": …}

A long-poll compares against the client's `If-None-Match` (or `version=` for one route): it answers 200 as
soon as the state differs, else 304 after `wait` seconds (≤ 30). A `GET /v1/controls` carrying an
`X-LLM-Incident-Instance` report (the SDK's) records the instance first (`GET /v1/instances`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Strict, TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from llm_incident.api.controls_watch import ControlsWatch, wait_until
from llm_incident.api.deps import ApiError, needs, parse_json, read_body, services
from llm_incident.api.docs import errors, json_body
from llm_incident.api.limits import long_poll_slot
from llm_incident.api.schemas import ControlsChange, ControlsChanged, ControlsConflict, ControlsOut
from llm_incident.bounds import INT_MAX, Amount, Count, Positive, Text, UtcTimestamp, has_nul
from llm_incident.controls.instances import parse_report, record_report
from llm_incident.controls.models import Outcome
from llm_incident.controls.service import change_controls, get_controls, list_controls
from llm_incident.controls.values import DEFAULT_ENV, MAX_NAME_CHARS, ControlError, ControlState
from llm_incident.incidents.models import Incident

MAX_WAIT = 30.0
MAX_EXPIRES_IN = 30 * 24 * 3600.0
MAX_ON_BEHALF_CHARS = MAX_NAME_CHARS // 2
T = TypeVar("T")
log = logging.getLogger("llm_incident.api")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    watch = controls_watch(app)
    try:
        with watch.closed_by_shutdown_signals():  # long-polls answer at once when the server stops
            yield
    finally:
        watch.detach()


router = APIRouter(tags=["controls"], lifespan=_lifespan)


def controls_watch(app: FastAPI) -> ControlsWatch:
    """The app's watch (created on first use), hooked to its database's commits."""
    watch = getattr(app.state, "controls_watch", None)
    if watch is None:
        watch = app.state.controls_watch = ControlsWatch(app.state.services.db)
    watch.attach()
    return watch


def control_json(state: ControlState) -> dict[str, Any]:
    """The public shape: exactly these twelve keys."""
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "route": state.route, "env": state.env, "enabled": state.enabled, "max_tokens": state.max_tokens,
        "model": state.model, "provider": state.provider, "retry_cap": state.retry_cap,
        "fallback_message": state.fallback_message, "version": state.version,
        "updated_at": iso(state.updated_at), "updated_by": state.updated_by, "expires_at": iso(state.expires_at),
    }


def control_etag(state: ControlState) -> str:
    return f'"{quote(state.route, safe=".-_~")}:{quote(state.env, safe=".-_~")}:{state.version}"'


def list_etag(states: list[ControlState], env: str | None) -> str:
    """Changes whenever any listed version changes (versions only grow) or the list grows."""
    scope = quote(env, safe=".-_~") if env is not None else "*"
    return f'"controls:{scope}:{sum(s.version for s in states)}:{len(states)}"'


def client_tags(header: str | None) -> set[str] | None:
    """The entity tags of an `If-None-Match` header (weak prefix dropped); None when absent."""
    if header is None:
        return None
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def wait_seconds(wait: float | None) -> float:
    if wait is None:
        return 0.0
    if not (0 <= wait <= MAX_WAIT):
        raise ApiError(400, f"wait must be between 0 and {MAX_WAIT:g} seconds, got {wait:g}")
    return wait


async def _conditional(request: Request, read: Callable[[], T], etag_of: Callable[[T], str],
                       body_of: Callable[[T], Any], wait: float, version_of: Callable[[T], int] | None = None,
                       version: int | None = None) -> Response:
    """200 with the body, or 304 when the client's tag (or `version`) still matches — after waiting up to
    `wait` seconds for it to stop matching."""
    tags = client_tags(request.headers.get("if-none-match"))

    def unchanged(state: T) -> bool:
        if version is not None and version_of is not None:
            return version_of(state) == version
        return tags is not None and ("*" in tags or etag_of(state) in tags)

    if wait > 0 and (tags is not None or version is not None):
        watch = controls_watch(request.app)
        async with long_poll_slot(request):  # 429 past LLM_INCIDENT_MAX_LONG_POLLS_PER_KEY
            with services(request).metrics.long_polls.track_inprogress():
                state, _ = await wait_until(watch, read, lambda s: not unchanged(s), wait, time.monotonic)
    else:
        state = await run_in_threadpool(read)
    headers = {"ETag": etag_of(state), "Cache-Control": "no-cache"}
    if unchanged(state):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body_of(state), headers=headers)


_NOT_MODIFIED = {304: {"description": "unchanged since the `If-None-Match` tag (or `version`)"}}


@router.get("/v1/controls", response_model=None, dependencies=[needs("read")],
            responses={200: {"model": list[ControlsOut]}, **_NOT_MODIFIED, **errors(400, 401, 403)})
async def get_all_controls(
    request: Request,
    env: str | None = Query(None, description="only this env (default: every env)"),
    route: list[str] = Query([], description="only these routes (defaults for those never changed)"),
    wait: float | None = Query(None, ge=0, le=MAX_WAIT, description="long-poll up to this many seconds"),
    instance: str | None = Header(
        None, alias="X-LLM-Incident-Instance",
        description="the SDK's instance report (URL-encoded: id, name, host, pid, version, wait, route…, "
                    "applied=<route>@<version>@<age s>…); recorded before the long-poll, ignored when "
                    "unusable; see `GET /v1/instances`"),
) -> Response:
    """Every changed route's controls plus defaults (version 0) for the other known routes."""
    svc = services(request)
    seconds = wait_seconds(wait)
    report = parse_report(instance, env, svc.clock())
    if report is not None:
        await run_in_threadpool(_record, svc, report)

    def read() -> list[ControlState]:
        with svc.db.read() as session:
            return list_controls(session, env=env, routes=route or None)

    return await _conditional(request, read, lambda states: list_etag(states, env),
                              lambda states: [control_json(s) for s in states], seconds)


def _record(svc: Any, report: Any) -> None:
    """Store an instance report; a failure is logged, never answered (the controls matter more)."""
    try:
        with svc.db.write() as session:
            record_report(session, report, svc.clock())
    except SQLAlchemyError as exc:
        log.warning("cannot record the report of instance %s: %s", report.id, exc)


@router.get("/v1/routes/{route}/controls", response_model=None, dependencies=[needs("read")],
            responses={200: {"model": ControlsOut}, **_NOT_MODIFIED, **errors(400, 401, 403)})
async def get_route_controls(
    request: Request,
    route: str,
    env: str = Query(DEFAULT_ENV),
    version: Count | None = Query(None, description="the version the client has (alternative to ETag)"),
    wait: float | None = Query(None, ge=0, le=MAX_WAIT, description="long-poll up to this many seconds"),
) -> Response:
    """One route's controls; defaults with version 0 for a route never changed."""
    svc = services(request)
    seconds = wait_seconds(wait)

    def read() -> ControlState:
        with svc.db.read() as session:
            return get_controls(session, route, env)

    return await _conditional(request, read, control_etag, control_json, seconds,
                              version_of=lambda s: s.version, version=version)


@dataclass(frozen=True)
class ChangeRequest:
    env: str
    changes: dict[str, Any]
    expected_version: int | None
    reason: str
    on_behalf_of: str | None
    incident: int | None
    expires_at: datetime | None


_META: dict[str, tuple[TypeAdapter[Any], str]] = {
    "env": (TypeAdapter(Annotated[Text, Strict()]), "a string"),
    "expected_version": (TypeAdapter(Annotated[Count, Strict()]), f"a whole number from 0 to {INT_MAX}"),
    "reason": (TypeAdapter(Annotated[Text, Strict()]), "a string"),
    "actor": (TypeAdapter(Annotated[Text, Strict()]), "a string"),
    "on_behalf_of": (TypeAdapter(Annotated[Text, Strict()]), "a string"),
    "incident": (TypeAdapter(Annotated[Positive, Strict()]), f"an incident number from 1 to {INT_MAX}"),
    "expires_at": (TypeAdapter(UtcTimestamp), "an RFC 3339 timestamp, e.g. 2026-11-26T16:00:00Z"),
    "expires_in": (TypeAdapter(Annotated[Amount, Strict()]), f"between 0 and {MAX_EXPIRES_IN:g} seconds"),
}


def _meta(payload: dict[str, Any], key: str) -> Any:
    """Pop and check one of the non-control keys with its shared bounded type; 400 naming it."""
    value = payload.pop(key, None)
    if value is None:
        return None
    adapter, what = _META[key]
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "timezone_aware":
            what = "timezone-aware: an RFC 3339 timestamp with an offset, e.g. 2026-11-26T16:00:00Z"
        elif error["type"] == "value_error":
            raise ApiError(400, f"{key}: {error['msg'].removeprefix('Value error, ')}") from None
        elif error["type"] == "string_pattern_mismatch":
            what += " without NUL characters"
        raise ApiError(400, f"{key} must be {what}") from None


def _on_behalf_of(on_behalf_of: str | None, actor: str | None) -> str | None:
    """Who the caller says it acts for (`actor` is the deprecated spelling); never the audit's actor."""
    if on_behalf_of is not None and actor is not None and on_behalf_of.strip() != actor.strip():
        raise ApiError(400, "give on_behalf_of or actor (its deprecated alias), not both")
    who = (on_behalf_of or actor or "").strip()
    if len(who) > MAX_ON_BEHALF_CHARS:
        raise ApiError(400, f"on_behalf_of must be at most {MAX_ON_BEHALF_CHARS} characters")
    return who or None


def audit_actor(key_name: str, on_behalf_of: str | None) -> str:
    """The audit's actor of an API change: the key's name, and whom it acted for when given."""
    actor = f"key:{key_name}"[:MAX_ON_BEHALF_CHARS]
    return f"{actor} on behalf of {on_behalf_of}" if on_behalf_of else actor


def _check_incident(session: Any, number: int | None) -> None:
    if number is not None and session.exec(select(Incident.id).where(Incident.number == number)).first() is None:
        raise ApiError(400, f"incident #{number} does not exist")


def parse_change(payload: Any, env: str | None, now: datetime) -> ChangeRequest:
    """The change request from a JSON body; 400 for a wrong shape (values are checked by the domain)."""
    if not isinstance(payload, dict):
        raise ApiError(400, 'expected a JSON object, e.g. {"enabled": false, "reason": "…"}')
    payload = dict(payload)
    body_env = _meta(payload, "env")
    if env is not None and body_env is not None and env != body_env:
        raise ApiError(400, f"env is {env!r} in the query but {body_env!r} in the body")
    expected = _meta(payload, "expected_version")
    reason = _meta(payload, "reason") or ""
    on_behalf_of = _on_behalf_of(_meta(payload, "on_behalf_of"), _meta(payload, "actor"))
    incident = _meta(payload, "incident")
    expires_at = _meta(payload, "expires_at")
    expires_in = _meta(payload, "expires_in")
    if expires_at is not None and expires_in is not None:
        raise ApiError(400, "give expires_at or expires_in, not both")
    if has_nul(payload):
        raise ApiError(400, "control values cannot contain NUL (U+0000) characters")
    if expires_in is not None:
        if not 0 < expires_in <= MAX_EXPIRES_IN:
            raise ApiError(400, f"expires_in must be between 0 and {MAX_EXPIRES_IN:g} seconds")
        expires_at = now + timedelta(seconds=expires_in)
    return ChangeRequest(env=env or body_env or DEFAULT_ENV, changes=payload, expected_version=expected,
                         reason=reason, on_behalf_of=on_behalf_of, incident=incident, expires_at=expires_at)


_CHANGE_DOCS: dict[str, Any] = dict(
    response_model=None, openapi_extra=json_body(ControlsChange), dependencies=[needs("controls")],
    responses={200: {"model": ControlsChanged}, 409: {"model": ControlsConflict}, **errors(400, 401, 403, 413, 415)})


@router.put("/v1/routes/{route}/controls", **_CHANGE_DOCS)
async def put_route_controls(
    request: Request, route: str, env: str | None = Query(None)
) -> JSONResponse:
    """Change controls; 200 `{controls, outcome, warnings, change_id}`, 409 on a version conflict."""
    svc = services(request)
    now = svc.clock()
    req = parse_change(parse_json(await read_body(request, svc.settings.max_body_bytes)), env, now)

    actor = audit_actor(request.state.api_key.name, req.on_behalf_of)

    def save():
        with svc.db.write() as session:
            _check_incident(session, req.incident)
            return change_controls(
                session, route, req.env, req.changes, actor=actor, reason=req.reason, incident=req.incident,
                expected_version=req.expected_version, expires_at=req.expires_at, now=now)

    try:
        result = await run_in_threadpool(save)
    except ControlError as exc:
        raise ApiError(400, str(exc)) from None
    body = {"controls": control_json(result.controls), "outcome": result.outcome.value,
            "warnings": list(result.warnings), "change_id": result.change_id}
    headers = {"ETag": control_etag(result.controls)}
    if result.outcome is Outcome.conflict:
        message = (f"version conflict: expected {req.expected_version}, current is {result.controls.version}; "
                   "re-read and retry")
        return JSONResponse({"error": message, **body}, status_code=409, headers=headers)
    return JSONResponse(body, headers=headers)


router.add_api_route("/v1/routes/{route}/controls", put_route_controls, methods=["POST"], **_CHANGE_DOCS)
