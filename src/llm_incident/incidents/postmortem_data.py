"""Gather a postmortem from the store: the incident, its timeline, control audit, evidence, change
log and route metrics. Reads only; plain values out (see postmortem_model).

Windows (all half-open, `[start, end)`, end = the close, or `now` for an open incident; start =
the onset when one is known — detected at the start or given with `since` — else the declaration):
baseline = the span of the same length as start → end just before the start; during = start →
first mitigation (start → end when nothing was mitigated); after = first mitigation → end. The
first mitigation is the first applied control change for the incident (audit or timeline).
Metrics follow `metrics.stats` (all envs, or the incident's env when it names exactly one).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, case, cast, func
from sqlmodel import Session, select

from llm_incident.changes import recent_changes
from llm_incident.controls.models import ControlChange
from llm_incident.controls.service import get_controls
from llm_incident.controls.values import DEFAULT_ENV, ControlState, describe_active
from llm_incident.events.models import Event
from llm_incident.evidence.models import Evidence
from llm_incident.evidence.service import evidence_counts, evidence_order
from llm_incident.incidents.models import Incident
from llm_incident.incidents.postmortem_followups import derive_follow_ups
from llm_incident.incidents.postmortem_model import (
    ActiveMitigation,
    ChangeRow,
    ChartPoint,
    ChartSeries,
    Decision,
    Entry,
    EvidenceCounts,
    EvidenceRow,
    Marker,
    ModelUse,
    Phase,
    Postmortem,
    RouteMetrics,
)
from llm_incident.incidents.runbook import FOLLOW_UP_PROMPTS
from llm_incident.incidents.service import get_incident, timeline
from llm_incident.metrics.percentiles import nearest_rank, raw_rows
from llm_incident.metrics.scope import C, IS_FLAGGED, Scope, event_conditions
from llm_incident.metrics.stats import UNKNOWN, WindowStats, stats_for

EVIDENCE_LIMIT = 25
"""Most evidence rows a postmortem lists (bad first); the counts cover all of them."""
CHANGE_LOOKBACK = timedelta(hours=24)
CHART_BUCKETS = 60
MIN_BUCKET = timedelta(minutes=1)


def compile_postmortem(
    session: Session, incident: Incident | int, *, now: datetime,
    evidence_limit: int = EVIDENCE_LIMIT, change_lookback: timedelta = CHANGE_LOOKBACK,
) -> Postmortem:
    """Everything measured and done in `incident` (a number is looked up; IncidentError if none).
    An open incident gives a draft as of `now`."""
    if isinstance(incident, int):
        incident = get_incident(session, incident)
    end = incident.closed_at or now
    decisions = _decisions(session, incident.number)
    entries = [Entry(e.ts, e.actor, e.kind, e.text) for e in timeline(session, incident)]
    routes = _impacted_routes(incident, decisions)
    began = min(incident.onset_at or incident.started_at, incident.started_at)
    # a change inside the onset's minute is the cause's side of the line, not "during"
    cut = began + ONSET_MINUTE if incident.onset_at is not None else began
    first = _first_mitigation(decisions, entries, began, end)
    phases = _phases(began, first, end)
    scope = metrics_scope(incident.envs)
    counts = evidence_counts(session, incident)
    changes = recent_changes(session, routes, until=end,
                             lookback=change_lookback + max(end - began, timedelta()))
    rows = sorted((_change_row(c) for c in changes), key=lambda c: (c.ts, c.route, c.kind))
    pm = Postmortem(
        number=incident.number, symptom=incident.symptom, incident_class=incident.incident_class,
        severity=incident.severity, status=incident.status, commander=incident.commander,
        routes=routes, envs=list(incident.envs), customer_tiers=list(incident.customer_tiers),
        started_at=incident.started_at, closed_at=incident.closed_at, as_of=end,
        onset_at=incident.onset_at, onset_source=incident.onset_source,
        triage=_triage_note(entries),
        first_mitigation_at=first, summary=incident.summary, phases=phases,
        metrics=[_route_metrics(session, route, phases, scope) for route in routes],
        usage=_usage(session, routes, phases, scope),
        changes_before=[c for c in rows if began - change_lookback <= c.ts <= cut],
        changes_during=[c for c in rows if c.ts > cut],
        decisions=decisions,
        status_updates=[e for e in entries if e.kind == "status"],
        timeline=entries,
        evidence=_evidence(session, incident, evidence_limit),
        evidence_counts=EvidenceCounts(counts.attached, counts.good, counts.bad),
        still_active=_still_active(session, routes, decisions),
        human_follow_ups=list(FOLLOW_UP_PROMPTS),
        change_lookback=change_lookback,
    )
    pm.follow_ups = derive_follow_ups(pm)
    return pm


ONSET_MINUTE = timedelta(minutes=1)


def _triage_note(entries: list[Entry]) -> str | None:
    """What the triage found at the start (its timeline entry), if it ran."""
    return next((e.text for e in reversed(entries) if e.kind == "triage"), None)


def metrics_scope(envs: list[str]) -> Scope | None:
    """The incident's env when it names exactly one; else every env."""
    return Scope(env=envs[0]) if len(envs) == 1 else None


def still_active_mitigations(session: Session, incident: Incident) -> list[tuple[str, str]]:
    """(route, what is still on) for every impacted route whose controls differ from the defaults
    now, e.g. `("support.reply", "max_tokens clamped to 800")` — for the close flow's Restore
    buttons. Routes of other envs than prod say so: `"[staging] killed"`."""
    decisions = _decisions(session, incident.number)
    active = _still_active(session, _impacted_routes(incident, decisions), decisions)
    return [(a.route, a.description if a.env == DEFAULT_ENV else f"[{a.env}] {a.description}")
            for a in active]


def describe_controls(state: ControlState) -> str:
    """Plain words for the controls that differ from their defaults ("" when none do)."""
    parts = describe_active(state)
    if parts and state.expires_at is not None:
        parts[-1] += f" (until {state.expires_at:%Y-%m-%d %H:%M} UTC)"
    return ", ".join(parts)


# --- pieces ----------------------------------------------------------------------------------


def _decisions(session: Session, number: int) -> list[Decision]:
    stmt = (select(ControlChange).where(ControlChange.incident == number)
            .order_by(ControlChange.ts, ControlChange.id))
    return [Decision(ts=c.ts, route=c.route, env=c.env, actor=c.actor, kind=c.kind,
                     outcome=c.outcome, before=dict(c.before), after=dict(c.after),
                     reason=c.reason, expires_at=c.expires_at)
            for c in session.exec(stmt)]


def _impacted_routes(incident: Incident, decisions: list[Decision]) -> list[str]:
    """The incident's routes in their order, then other routes its control decisions touched."""
    extra = sorted({d.route for d in decisions} - set(incident.routes))
    return list(dict.fromkeys([*incident.routes, *extra]))


def _first_mitigation(decisions: list[Decision], entries: list[Entry], start: datetime,
                      end: datetime) -> datetime | None:
    times = [d.ts for d in decisions if d.applied and d.kind == "change"]
    times += [e.ts for e in entries if e.kind == "control"]
    inside = [max(ts, start) for ts in times if ts <= end]
    return min(inside) if inside else None


def _phases(start: datetime, first: datetime | None, end: datetime) -> list[Phase]:
    if end <= start:
        return []
    split = first if first is not None and start < first < end else None
    phases = [Phase("baseline", start - (end - start), start)]
    if first is None or first > start:
        phases.append(Phase("during", start, split or end))
    if first is not None and first < end:
        phases.append(Phase("after", split or start, end))
    return phases


def _route_metrics(session: Session, route: str, phases: list[Phase],
                   scope: Scope | None) -> RouteMetrics:
    stats: dict[str, WindowStats | None] = {"baseline": None, "during": None, "after": None}
    for phase in phases:
        stats[phase.name] = stats_for(session, route, phase.start, phase.end, scope=scope)
    return RouteMetrics(route, **stats)


def _usage(session: Session, routes: list[str], phases: list[Phase],
           scope: Scope | None) -> list[ModelUse]:
    """Calls per (route, model, provider) in the baseline and during the incident (start → end)."""
    if not phases or not routes:
        return []
    baseline = phases[0]
    start, end = baseline.start, phases[-1].end
    in_incident = case((C.ts >= baseline.end, 1), else_=0)
    conditions = event_conditions(None, start, end, scope)
    stmt = (select(C.route, C.model, C.provider, func.count() - func.sum(in_incident),
                   func.sum(in_incident))
            .where(C.route.in_(routes), *conditions)
            .group_by(C.route, C.model, C.provider))
    order = {route: i for i, route in enumerate(routes)}
    rows = [ModelUse(route, model or UNKNOWN, provider or UNKNOWN, int(before), int(during))
            for route, model, provider, before, during in raw_rows(session, stmt)]
    rows.sort(key=lambda u: (order[u.route], -u.incident_calls, -u.baseline_calls, u.model,
                             u.provider))
    return rows


def _change_row(change: Any) -> ChangeRow:
    return ChangeRow(ts=change.ts, route=change.route, kind=change.kind,
                     description=change.description, ref=change.ref, author=change.author)


def _evidence(session: Session, incident: Incident, limit: int) -> list[EvidenceRow]:
    """The first `limit` evidence rows (bad, good, unlabelled; oldest first), capped in SQL."""
    if limit <= 0:
        return []
    stmt = (select(Evidence).where(Evidence.incident_id == incident.id)
            .order_by(*evidence_order()).limit(limit))
    picked = list(session.exec(stmt))
    ids = [row.event_id for row in picked]
    found = session.exec(select(Event).where(Event.event_id.in_(ids)))
    events = {e.event_id: e for e in found}
    out = []
    for row in picked:
        event = events.get(row.event_id)
        out.append(EvidenceRow(
            event_id=row.event_id, label=row.label, note=row.note, labelled_by=row.labelled_by,
            route=event.route if event else None, model=event.model if event else None,
            status=event.status if event else None, tokens_out=event.tokens_out if event else None,
            duration_ms=event.duration_ms if event else None))
    return out


def _still_active(session: Session, routes: list[str],
                  decisions: list[Decision]) -> list[ActiveMitigation]:
    keys = list(dict.fromkeys([*((r, DEFAULT_ENV) for r in routes),
                               *((d.route, d.env) for d in decisions)]))
    out = []
    for route, env in keys:
        state = get_controls(session, route, env)
        described = describe_controls(state)
        if described:
            out.append(ActiveMitigation(route, env, described, state.max_tokens))
    return out


# --- charts ----------------------------------------------------------------------------------


def chart_markers(pm: Postmortem, route: str | None = None) -> list[Marker]:
    """The start, each applied control change up to the end (of `route` when given), the close."""
    markers = [Marker(pm.started_at, "start", "start")]
    for d in pm.mitigations:
        if pm.started_at <= d.ts <= pm.as_of and route in (None, d.route):
            changed = [k for k in d.after if d.before.get(k) != d.after[k]] or list(d.after)
            what = ", ".join(f"{k}={_word(d.after[k])}" for k in changed)
            markers.append(Marker(d.ts, what if route else f"{d.route}: {what}", "mitigation"))
    if pm.closed_at is not None:
        markers.append(Marker(pm.closed_at, "close", "close"))
    return markers


def _word(v: Any) -> str:
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def chart_window(pm: Postmortem) -> tuple[datetime, datetime] | None:
    """Baseline start → end of the incident (None when the incident has no span yet)."""
    if not pm.phases:
        return None
    return pm.phases[0].start, pm.as_of


def _epoch_seconds(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", C.ts)), BigInteger)
    return cast(func.strftime("%s", C.ts), Integer)


def chart_series(session: Session, route: str, start: datetime, end: datetime, *,
                 buckets: int = CHART_BUCKETS, scope: Scope | None = None) -> ChartSeries:
    """p95 tokens_out, p95 duration and flagged rate of `route` per bucket over `[start, end)`.

    About `buckets` buckets of whole minutes (at least one minute), counted from `start`
    truncated to the second. One query on the covering index reads three columns per event in
    the window; percentiles are nearest-rank, as in stats."""
    if start >= end:
        raise ValueError("chart window start must be before its end")
    origin = start.replace(microsecond=0)
    width = max(MIN_BUCKET, (end - origin) / max(1, buckets))
    width = timedelta(minutes=-(-width.total_seconds() // 60))  # round up to whole minutes
    width_s = int(width.total_seconds())
    offset = (_epoch_seconds(session) - int(origin.timestamp())).self_group()
    bucket = offset.op("/")(width_s)
    flagged = case((IS_FLAGGED, 1), else_=0)
    stmt = (select(bucket, C.tokens_out, C.duration_ms, flagged)
            .where(*event_conditions(route, start, end, scope)))
    grouped: dict[int, tuple[list[int], list[float], list[int]]] = {}
    for index, tokens_out, duration_ms, is_flagged in raw_rows(session, stmt):
        tokens, durations, flags = grouped.setdefault(int(index), ([], [], []))
        if tokens_out is not None:
            tokens.append(tokens_out)
        if duration_ms is not None:
            durations.append(duration_ms)
        flags.append(int(is_flagged))
    count = math.ceil((end - origin).total_seconds() / width_s)
    points = []
    for i in range(count):
        tokens, durations, flags = grouped.get(i, ([], [], []))
        points.append(ChartPoint(
            ts=origin + i * width, calls=len(flags), p95_tokens_out=_p95(tokens),
            p95_duration_ms=_p95(durations),
            flagged_rate=sum(flags) / len(flags) if flags else None))
    return ChartSeries(route=route, start=origin, end=end, bucket=width, points=points)


def _p95(values: list[Any]) -> Any:
    if not values:
        return None
    values.sort()
    return values[nearest_rank(95.0, len(values)) - 1]
