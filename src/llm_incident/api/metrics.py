"""`GET /v1/routes/{route}/metrics` (window stats vs baseline) and `…/breakdowns` (triage tables).

Query parameters (both endpoints):
  window=30m            span ending now: 90s, 30m, 1h, 24h, 7d … (default 30m)
  baseline=previous     previous | day | week | <start>/<end> (RFC 3339 with offset)
  filter=…              the event filter language (see metrics.filters)
  env= model= provider= region= customer_tier=   equality filters
Bad parameters answer 400 `{"error": "..."}`. A route that never sent an event answers 200 with
zero calls and a `warnings` entry saying so (as the controls API does), in case the name is a typo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session

from llm_incident.api.deps import ApiError, needs, services
from llm_incident.api.docs import errors
from llm_incident.api.schemas import BreakdownsAnswer, MetricsAnswer
from llm_incident.events.routes import is_known_route
from llm_incident.metrics.breakdowns import breakdowns
from llm_incident.metrics.compare import compare_windows
from llm_incident.metrics.filters import FilterError, compile_filter
from llm_incident.metrics.scope import Scope
from llm_incident.metrics.windows import (
    Baseline,
    Window,
    WindowError,
    baseline_for,
    format_span,
    parse_span,
    window_ending,
)

router = APIRouter(dependencies=[needs("read")], responses=errors(403), tags=["metrics"])

DEFAULT_WINDOW = "30m"
PERCENTILE_METHOD = "nearest-rank"


def route_warnings(session: Session, route: str) -> list[str]:
    """What the answer should warn about: a route that has never sent an event."""
    if is_known_route(session, route):
        return []
    return [f"route {route!r} has sent no events yet: every stat is empty; check the name"]


def _where(text: str | None, now: datetime) -> ColumnElement[bool] | None:
    """The compiled `filter=` text, or None; FilterError → 400 pointing at the column."""
    if text is None or not text.strip():
        return None
    try:
        return compile_filter(text, now=now)
    except FilterError as exc:
        raise ApiError(400, f"bad filter at {exc}") from None


class _Params:
    """The shared query parameters, parsed and checked."""

    def __init__(
        self,
        window: str = Query(DEFAULT_WINDOW, description="span ending now: 30m, 1h, 24h, 7d"),
        baseline: str = Query("previous", description="previous | day | week | <start>/<end>"),
        filter_text: str | None = Query(None, alias="filter", description="filter language"),
        env: str | None = Query(None),
        model: str | None = Query(None),
        provider: str | None = Query(None),
        region: str | None = Query(None),
        customer_tier: str | None = Query(None),
    ) -> None:
        self.window_text, self.baseline_text, self.filter_text = window, baseline, filter_text
        self.scope = Scope(env, model, provider, region, customer_tier)

    def resolve(self, now: datetime) -> tuple[Window, Baseline, ColumnElement[bool] | None]:
        try:
            current = window_ending(now, parse_span(self.window_text))
            base = baseline_for(current, self.baseline_text)
        except WindowError as exc:
            raise ApiError(400, str(exc)) from None
        return current, base, _where(self.filter_text, now)

    def scope_json(self) -> dict[str, Any]:
        return {**self.scope.to_dict(), "filter": self.filter_text or None}


@router.get("/v1/routes/{route}/metrics", response_model=None,
            responses={200: {"model": MetricsAnswer}, **errors(400, 401)})
def get_route_metrics(route: str, request: Request, params: _Params = Depends()) -> dict[str, Any]:
    """Every stat for the window and its baseline, with `{abs, rel, verdict}` per stat."""
    svc = services(request)
    now = svc.clock()
    current, base, where = params.resolve(now)
    with svc.db.read() as session:
        comparison = compare_windows(
            session, route, now=now, window=current, baseline=base, where=where,
            **params.scope.to_dict(),
        )
        warnings = route_warnings(session, route)
    body = comparison.to_dict()
    body["window"]["span"] = format_span(current.span)
    body["scope"] = params.scope_json()
    body["percentiles"] = PERCENTILE_METHOD
    body["warnings"] = warnings
    return body


@router.get("/v1/routes/{route}/breakdowns", response_model=None,
            responses={200: {"model": BreakdownsAnswer}, **errors(400, 401)})
def get_route_breakdowns(
    route: str, request: Request, params: _Params = Depends(),
    limit: int = Query(10, ge=1, le=100, description="rows in top_prompts and volume_by_route"),
) -> dict[str, Any]:
    """p95 duration by model, calls and cost by route, model mix vs baseline, errors by model and
    region, top prompts by cost."""
    svc = services(request)
    now = svc.clock()
    current, base, where = params.resolve(now)
    with svc.db.read() as session:
        result = breakdowns(session, route, current, baseline=base.window, scope=params.scope,
                            where=where, limit=limit)
        warnings = route_warnings(session, route)
    body = result.to_dict()
    body["window"]["span"] = format_span(current.span)
    body["baseline"] = base.to_dict()
    body["scope"] = params.scope_json()
    body["percentiles"] = PERCENTILE_METHOD
    body["warnings"] = warnings
    return body
