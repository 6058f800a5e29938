"""A route page's data: charts per bucket with marks, the headline vs baseline, model mix and top
prompts for the range, recent events matching the filter box, controls and their audit.

Past LLM_INCIDENT_EXACT_WINDOW_MAX the charts and the headline read rollups (percentiles marked
approximate); the model mix is the headline's (rollups keep the model); top prompts, which the
rollups do not keep, are read over the range's most recent exact window only, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session
from sqlmodel import select

from llm_incident.alerts.models import AlertNotification
from llm_incident.alerts.service import aware_utc
from llm_incident.changes import recent_changes
from llm_incident.controls.models import ControlChange, Outcome
from llm_incident.controls.service import control_history, list_controls
from llm_incident.controls.values import ControlState
from llm_incident.dashboard.ranges import Range
from llm_incident.dashboard.series import CHARTED, Point, points, route_series
from llm_incident.dashboard.svg import Mark
from llm_incident.events.models import Event
from llm_incident.events.routes import is_known_route
from llm_incident.incidents.models import Incident
from llm_incident.metrics.breakdowns import PromptCost, recent_top_prompts
from llm_incident.metrics.compare import SKETCHED, Comparison, compare_windows
from llm_incident.metrics.filters import FilterError
from llm_incident.metrics.search import search_events
from llm_incident.metrics.windows import Window, window_ending

DEFAULT_FILTER = 'status = "flagged" OR contains_banned = true'
EVENT_LIMIT = 50
AUDIT_LIMIT = 20
INCIDENT_SCAN = 500  # newest incidents looked at for marks


@dataclass
class Chart:
    stat: str
    title: str
    kind: str
    points: list[Point]
    approximate: bool = False  # a percentile whose buckets came from the rollups (within 1 %)


@dataclass
class RoutePage:
    route: str
    range: Range
    window: Window  # the charts' (bucket-aligned) window
    comparison: Comparison  # the headline: the range ending now vs the one before
    charts: list[Chart]
    marks: list[Mark]
    model_mix: dict[str, int]
    prompts: list[PromptCost]
    prompts_window: Window  # the range's, or its last LLM_INCIDENT_EXACT_WINDOW_MAX past that
    filter_text: str
    filter_error: str | None
    events: list[Event]
    controls: list[ControlState]
    audit: list[ControlChange] = field(default_factory=list)
    known: bool = True  # False: the route never sent an event (a typo?)


def route_marks(session: Session, route: str, window: Window) -> list[Mark]:
    """Changes, applied control changes and expiries, alert onsets and incidents of the route."""
    marks = [Mark(c.ts, f"{c.kind}: {c.description[:120]}", "change")
             for c in recent_changes(session, [route], until=window.end, lookback=window.span)]
    for c in control_history(session, route=route, limit=500):
        if c.outcome == Outcome.applied.value and window.start <= _aware(c.ts) <= window.end:
            what = ", ".join(f"{k}={c.after.get(k)}" for k in c.fields)
            marks.append(Mark(_aware(c.ts), f"{c.kind} {c.env}: {what}", "control"))
    alerts = session.exec(select(AlertNotification).where(
        AlertNotification.route == route, AlertNotification.ts >= window.start,
        AlertNotification.ts <= window.end, AlertNotification.level.in_(("warning", "critical"))))
    for a in alerts:
        marks.append(Mark(_aware(a.onset or a.ts), f"alert {a.rule_id} {a.level}", "alert"))
    incidents = session.exec(select(Incident).order_by(Incident.number.desc()).limit(INCIDENT_SCAN))
    for inc in incidents:
        began = _aware(inc.onset_at or inc.started_at)
        if route in inc.routes and window.start <= began <= window.end:
            marks.append(Mark(began, f"incident #{inc.number} {inc.symptom[:80]}", "incident"))
    return sorted(marks, key=lambda m: m.ts)


def _aware(ts: datetime) -> datetime:
    return aware_utc(ts)  # type: ignore[return-value]


def matching_events(session: Session, route: str, filter_text: str, now: datetime
                    ) -> tuple[list[Event], str | None]:
    """The newest events of the route matching the filter, or none and the filter's error."""
    try:
        return search_events(session, filter_text=filter_text, now=now, limit=EVENT_LIMIT,
                             route=route), None
    except FilterError as exc:
        return [], f"bad filter at {exc}"


def route_page(session: Session, route: str, *, now: datetime, rng: Range,
               filter_text: str | None) -> RoutePage:
    window = rng.window(now)
    buckets = route_series(session, route, rng.edges(now), now=now)
    rolled = any(b.approximate for b in buckets)
    charts = [Chart(stat, title, kind, points(buckets, stat), rolled and stat in SKETCHED)
              for stat, title, kind in CHARTED]
    headline = compare_windows(session, route, now=now, window=window_ending(now, rng.span))
    text = DEFAULT_FILTER if filter_text is None else filter_text
    events, error = matching_events(session, route, text, now)
    prompts, prompts_window = recent_top_prompts(session, route, headline.window)
    return RoutePage(
        route=route, range=rng, window=window, comparison=headline, charts=charts,
        marks=route_marks(session, route, window), model_mix=headline.now.model_mix,
        prompts=prompts, prompts_window=prompts_window,
        filter_text=text, filter_error=error, events=events,
        controls=list_controls(session, routes=[route]),
        audit=control_history(session, route=route, limit=AUDIT_LIMIT),
        known=is_known_route(session, route),
    )
