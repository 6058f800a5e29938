"""The app factory: one ASGI app holding the HTTP API, Slack and the scheduler."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_incident import __version__
from llm_incident.api import (audit, changes, controls, evidence, health, ingest, keys, postmortem, search,
                              traces, triage)
from llm_incident.api import metrics as metrics_api
from llm_incident.api import instances as instances_api
from llm_incident.api.dberrors import UNAVAILABLE_RESPONSE, database_error
from llm_incident.api.deps import ApiError, Services, allowed_methods, check_params, utc_now
from llm_incident.api.docs import install_docs
from llm_incident.api.limits import install_limits
from llm_incident.apikeys import KeyChecker
from llm_incident.dashboard.pages import install_dashboard
from llm_incident.db import Database
from llm_incident.metrics.rollup_stats import set_exact_window_max
from llm_incident.observability import ServiceMetrics
from llm_incident.settings import Settings
from llm_incident.scheduler.setup import build_scheduler
from llm_incident.slack.mount import mount as mount_slack

log = logging.getLogger(__name__)


class Background(Protocol):
    """Something that runs alongside the server (a worker thread, a socket connection)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start `app.state.lifecycle` in order at startup; stop them in reverse at shutdown."""
    started: list[Background] = []
    try:
        for part in app.state.lifecycle:
            await run_in_threadpool(part.start)
            started.append(part)
        yield
    finally:
        for part in reversed(started):
            await run_in_threadpool(part.stop)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404 (no such path) and 405 (method not allowed, with `Allow`) in our `{"error"}` shape."""
        headers = exc.headers
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
            allow = allowed_methods(request)
            headers = {"Allow": ", ".join(allow)} if allow else exc.headers
        elif exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no such endpoint: {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_params(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body"))
            parts.append(f"{where}: {err['msg']}")
        return JSONResponse({"error": "bad request: " + "; ".join(parts)}, status_code=400)

    app.add_exception_handler(SQLAlchemyError, database_error)  # 503 + Retry-After when transient

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        """A bug: 500 `{"error"}` saying `Connection: close`, since uvicorn then closes it."""
        return JSONResponse({"error": "internal server error"}, status_code=500,
                            headers={"Connection": "close"})


def _install_request_metrics(app: FastAPI, metrics: ServiceMetrics) -> None:
    @app.middleware("http")
    async def _measure(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.http_seconds.labels(request.method, template).observe(time.perf_counter() - start)
        metrics.http_requests.labels(request.method, template, str(response.status_code)).inc()
        return response


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    clock: Callable[[], datetime] = utc_now,
    time_scale: float = 1.0,
) -> FastAPI:
    """Build the service; nothing is connected or started until the server runs it.

    `clock` is the service's time; `time_scale` says how fast it runs against the wall clock
    (the demo's `--speed`), so the scheduler's intervals keep their length in `clock` time."""
    db = database or Database(settings.database_url)
    set_exact_window_max(settings.exact_window_max)  # this service's LLM_INCIDENT_EXACT_WINDOW_MAX
    metrics = ServiceMetrics()
    app = FastAPI(
        title="llm-incident",
        version=__version__,
        description="Incident response for LLM features: ingest, controls, metrics, Slack.",
        lifespan=_lifespan,
        dependencies=[Depends(check_params)],
        docs_url=None,
        redoc_url=None,
    )
    app.state.lifecycle = []
    app.state.services = Services(
        settings=settings, db=db, keys=KeyChecker(settings.api_keys), metrics=metrics, clock=clock
    )
    _install_error_handlers(app)
    _install_request_metrics(app, metrics)
    for module in (health, ingest, traces, changes, search, metrics_api, controls, evidence,
                   postmortem, audit, keys, triage):
        app.include_router(module.router, responses=UNAVAILABLE_RESPONSE)
    app.include_router(instances_api.router, responses=UNAVAILABLE_RESPONSE)  # the SDK instances
    install_docs(app)
    install_dashboard(app)  # HTML pages at /, kept out of the OpenAPI document
    install_limits(app)  # ingest rate limit; 429s declared
    jobs = build_scheduler(settings, db, clock, metrics, time_scale)  # loads the alert rules: RuleError when bad
    slack = mount_slack(app, settings, db, clock, jobs.alert_config)
    jobs.context.delivery = slack.delivery if slack else None
    if settings.alert_channel and slack is None:
        log.warning("LLM_INCIDENT_ALERT_CHANNEL is set but Slack is disabled: alerts are "
                    "evaluated and kept (see `/llm-incident alerts`), nothing is posted")
    app.state.scheduler = jobs.scheduler
    if jobs.scheduler is not None:
        app.state.lifecycle.append(jobs.scheduler)
    return app
