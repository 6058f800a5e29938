"""An incident page's data: its timeline, triage per route, evidence with labels, and the
postmortem (`compile_postmortem` + `render_markdown`) as HTML with a chart per route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session
from sqlmodel import select

from llm_incident.alerts.service import aware_utc
from llm_incident.commands.triage_posts import incident_triages
from llm_incident.dashboard.series import Point
from llm_incident.dashboard.svg import Mark
from llm_incident.evidence.service import EvidenceItem, list_evidence
from llm_incident.incidents.models import Incident, TimelineEntry
from llm_incident.incidents.postmortem import (
    chart_markers,
    chart_series,
    chart_window,
    charted_routes,
    compile_postmortem,
    render_markdown,
)
from llm_incident.incidents.postmortem_data import metrics_scope
from llm_incident.incidents.service import get_incident, timeline
from llm_incident.triage.report import Triage

LIST_LIMIT = 200
PM_CHARTS = (("flagged_rate", "flagged rate", "rate"), ("p95_duration_ms", "p95 duration", "ms"),
             ("p95_tokens_out", "p95 tokens_out", "count"))


@cache
def _markdown() -> MarkdownIt:
    """CommonMark with tables; raw HTML in the text is escaped, never passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> Markup:
    return Markup(_markdown().render(text))


@dataclass
class RouteChart:
    route: str
    title: str
    kind: str
    start: datetime
    end: datetime
    points: list[Point]
    marks: list[Mark]


@dataclass
class IncidentPage:
    incident: Incident
    timeline: list[TimelineEntry]
    triages: list[Triage]
    evidence: list[EvidenceItem]
    postmortem_html: Markup
    charts: list[RouteChart]


def list_incidents(session: Session) -> list[Incident]:
    """The newest incidents, open or closed."""
    return list(session.exec(select(Incident).order_by(Incident.number.desc()).limit(LIST_LIMIT)))


def incident_page(session: Session, number: int, *, now: datetime) -> IncidentPage:
    """Raises IncidentError for an unknown number."""
    incident = get_incident(session, number)
    as_of = aware_utc(incident.closed_at) or now
    pm = compile_postmortem(session, number, now=now)
    charts = []
    window = chart_window(pm)
    if window is not None:
        scope = metrics_scope(pm.envs)
        for route in charted_routes(pm):
            markers = chart_markers(pm, route)
            series = chart_series(session, route, *window, scope=scope,
                                  marks=[m.ts for m in markers])
            marks = [Mark(m.ts, m.label, "incident" if m.kind != "mitigation" else "control")
                     for m in markers]
            for stat, title, kind in PM_CHARTS:
                pts = [Point(p.ts, p.end or p.ts + series.bucket,
                             None if getattr(p, stat) is None else float(getattr(p, stat)))
                       for p in series.points]
                charts.append(RouteChart(route, title, kind, series.start, series.end, pts, marks))
    return IncidentPage(
        incident=incident, timeline=timeline(session, incident),
        triages=incident_triages(session, incident, as_of),
        evidence=list_evidence(session, incident),
        postmortem_html=markdown_html(render_markdown(pm)), charts=charts,
    )
