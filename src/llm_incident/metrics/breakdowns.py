"""The runbook's triage breakdowns for a window.

- latency: p95 duration by model (`p95_duration_by_model`);
- cost/volume: calls and cost by route (`volume_by_route`), model mix change against a baseline
  (`model_mix_change`), top prompts by total cost (`top_prompts`; `recent_top_prompts` bounds a
  long window to its last LLM_INCIDENT_EXACT_WINDOW_MAX, as prompts are not in the rollups);
- provider: error codes by model and region (`errors_by_model_region`).

Same conventions as `metrics.stats`: `[start, end)`, nearest-rank percentiles ignoring NULLs, cost
over priced events only with the unpriced count alongside. `breakdowns()` runs them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, desc, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.percentiles import pg_percentile, sqlite_percentiles
from llm_incident.metrics.rollup_stats import exact_window_max
from llm_incident.metrics.scope import C, IS_ERROR, Scope, event_conditions
from llm_incident.metrics.windows import Window

UNKNOWN = "unknown"


class _AsDict:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class ModelLatency(_AsDict):
    model: str
    calls: int
    p95_duration_ms: float | None


@dataclass
class RouteVolume(_AsDict):
    route: str
    calls: int
    total_cost_usd: float
    priced_calls: int
    unpriced_calls: int
    cost_per_call_usd: float | None


@dataclass
class ModelShare(_AsDict):
    model: str
    calls: int
    share: float | None
    baseline_calls: int
    baseline_share: float | None
    share_change: float | None  # percentage points as a fraction: 0.25 = +25 pts


@dataclass
class ErrorGroup(_AsDict):
    model: str
    region: str
    error_code: str
    count: int


@dataclass
class PromptCost(_AsDict):
    prompt_id: str
    prompt_version: str | None
    calls: int
    total_cost_usd: float
    priced_calls: int
    unpriced_calls: int
    cost_per_call_usd: float | None


@dataclass
class Breakdowns:
    """All breakdowns of one route's window (and the model mix against a baseline)."""

    route: str | None
    window: Window
    baseline: Window | None
    p95_duration_by_model: list[ModelLatency] = field(default_factory=list)
    volume_by_route: list[RouteVolume] = field(default_factory=list)
    model_mix: list[ModelShare] = field(default_factory=list)
    errors_by_model_region: list[ErrorGroup] = field(default_factory=list)
    top_prompts: list[PromptCost] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "window": self.window.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            **{name: [item.to_dict() for item in getattr(self, name)]
               for name in ("p95_duration_by_model", "volume_by_route", "model_mix",
                            "errors_by_model_region", "top_prompts")},
        }


def _name(value: str | None) -> str:
    return UNKNOWN if value is None else value


def _priced_cost() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    cost = func.coalesce(func.sum(case((C.priced, C.cost_usd))), 0.0)
    priced = func.coalesce(func.sum(case((C.priced, 1), else_=0)), 0)
    return cost, priced


def p95_duration_by_model(
    session: Session, route: str | None, start: datetime, end: datetime, *,
    scope: Scope | None = None, where: ColumnElement[bool] | None = None,
) -> list[ModelLatency]:
    """Calls and p95 duration per model, slowest first (models without durations last)."""
    conditions = event_conditions(route, start, end, scope, where)
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            select(C.model, func.count(), pg_percentile(C.duration_ms, 95.0))
            .where(*conditions).group_by(C.model)
        ).all()
    else:
        counts = session.execute(
            select(C.model, func.count(), func.count(C.duration_ms))
            .where(*conditions).group_by(C.model)
        ).all()
        rows = []
        for model, calls, n in counts:
            same_model = C.model.is_(None) if model is None else C.model == model
            p95 = sqlite_percentiles(session, C.duration_ms, (95.0,), [*conditions, same_model], n)
            rows.append((model, calls, p95[95.0]))
    out = [ModelLatency(_name(m), calls, p95) for m, calls, p95 in rows]
    out.sort(key=lambda r: (r.p95_duration_ms is None, -(r.p95_duration_ms or 0), r.model))
    return out


def volume_by_route(
    session: Session, start: datetime, end: datetime, *, scope: Scope | None = None,
    where: ColumnElement[bool] | None = None, limit: int = 20,
) -> list[RouteVolume]:
    """Calls and priced cost per route over all routes, costliest first."""
    cost, priced = _priced_cost()
    rows = session.execute(
        select(C.route, func.count(), cost, priced)
        .where(*event_conditions(None, start, end, scope, where))
        .group_by(C.route).order_by(desc(cost), desc(func.count()), C.route).limit(limit)
    ).all()
    return [
        RouteVolume(route, calls, float(total), n_priced, calls - n_priced,
                    float(total) / n_priced if n_priced else None)
        for route, calls, total, n_priced in rows
    ]


def model_counts(
    session: Session, route: str | None, start: datetime, end: datetime, *,
    scope: Scope | None = None, where: ColumnElement[bool] | None = None,
) -> dict[str, int]:
    """Calls per model in the window."""
    rows = session.execute(
        select(C.model, func.count())
        .where(*event_conditions(route, start, end, scope, where)).group_by(C.model)
    ).all()
    return {_name(model): calls for model, calls in rows}


def model_mix_change(now: dict[str, int], baseline: dict[str, int]) -> list[ModelShare]:
    """Each model's share of calls now and in the baseline; largest share change first."""
    total_now, total_base = sum(now.values()), sum(baseline.values())
    out = []
    for model in sorted(set(now) | set(baseline)):
        calls, base_calls = now.get(model, 0), baseline.get(model, 0)
        share = calls / total_now if total_now else None
        base_share = base_calls / total_base if total_base else None
        change = share - base_share if share is not None and base_share is not None else None
        out.append(ModelShare(model, calls, share, base_calls, base_share, change))
    out.sort(key=lambda s: (-(abs(s.share_change) if s.share_change is not None else -1),
                            -s.calls, s.model))
    return out


def errors_by_model_region(
    session: Session, route: str | None, start: datetime, end: datetime, *,
    scope: Scope | None = None, where: ColumnElement[bool] | None = None,
) -> list[ErrorGroup]:
    """Error counts per (model, region, error code), most frequent first."""
    code = func.coalesce(C.error_code, UNKNOWN)
    rows = session.execute(
        select(C.model, C.region, code, func.count())
        .where(*event_conditions(route, start, end, scope, where), IS_ERROR)
        .group_by(C.model, C.region, code)
    ).all()
    out = [ErrorGroup(_name(m), _name(r), c, n) for m, r, c, n in rows]
    out.sort(key=lambda g: (-g.count, g.model, g.region, g.error_code))
    return out


def top_prompts(
    session: Session, route: str | None, start: datetime, end: datetime, *,
    limit: int = 10, scope: Scope | None = None, where: ColumnElement[bool] | None = None,
) -> list[PromptCost]:
    """Prompts (prompt_id, prompt_version) by total priced cost in the window, costliest first.

    Events without a prompt_id are left out; `unpriced_calls` says how many calls of each prompt
    had no known cost (their cost is not in the total).
    """
    cost, priced = _priced_cost()
    calls = func.count()
    rows = session.execute(
        select(C.prompt_id, C.prompt_version, calls, cost, priced)
        .where(*event_conditions(route, start, end, scope, where), C.prompt_id.is_not(None))
        .group_by(C.prompt_id, C.prompt_version)
        .order_by(desc(cost), desc(calls), C.prompt_id, C.prompt_version)
        .limit(limit)
    ).all()
    return [
        PromptCost(pid, version, n, float(total), n_priced, n - n_priced,
                   float(total) / n_priced if n_priced else None)
        for pid, version, n, total, n_priced in rows
    ]


def recent_top_prompts(
    session: Session, route: str | None, window: Window, *, limit: int = 10,
) -> tuple[list[PromptCost], Window]:
    """`top_prompts` over `window`, or over its most recent `exact_window_max()` when it is
    longer (the rollups have no prompt dimension: a long range would scan all its raw events);
    returns the prompts and the window they were read over."""
    span = exact_window_max()
    read = window if window.span <= span else Window(window.end - span, window.end)
    return top_prompts(session, route, read.start, read.end, limit=limit), read


def breakdowns(
    session: Session, route: str | None, window: Window, *, baseline: Window | None = None,
    scope: Scope | None = None, where: ColumnElement[bool] | None = None, limit: int = 10,
) -> Breakdowns:
    """Every breakdown for `route` over `window`; the model mix is compared with `baseline`."""
    start, end = window.start, window.end
    kwargs: dict[str, Any] = {"scope": scope, "where": where}
    mix_now = model_counts(session, route, start, end, **kwargs)
    mix_base = (model_counts(session, route, baseline.start, baseline.end, **kwargs)
                if baseline else {})
    return Breakdowns(
        route=route,
        window=window,
        baseline=baseline,
        p95_duration_by_model=p95_duration_by_model(session, route, start, end, **kwargs),
        volume_by_route=volume_by_route(session, start, end, limit=limit, **kwargs),
        model_mix=model_mix_change(mix_now, mix_base),
        errors_by_model_region=errors_by_model_region(session, route, start, end, **kwargs),
        top_prompts=top_prompts(session, route, start, end, limit=limit, **kwargs),
    )
