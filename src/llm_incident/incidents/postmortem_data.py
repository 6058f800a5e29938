"""Gather a postmortem from the store: the incident, its timeline, control audit, evidence, change
log and route metrics. Reads only; plain values out (see postmortem_model).

Windows (all half-open, `[start, end)`, end = the close, or `now` for an open incident; start =
the onset when one is known — detected at the start or given with `since` — else the declaration):
baseline = the span of the same length as start → end just before the start; during = start →
first mitigation (start → end when nothing was mitigated); after = first mitigation → end. The
first mitigation is the first applied control change for the incident that reduced impact (a
kill, clamp, switch or cap; not a restore, not an expiry: `Decision.mitigates`).
Metrics follow `metrics.stats` (all envs, or the incident's env when it names exactly one).

A closed incident's postmortem is frozen at its close (`freeze_postmortem`, stored by
`postmortem_snapshot`); `compile_postmortem` returns that one, with an after-close note of what
changed since. An incident closed before snapshots existed is compiled up to its close, with its
controls as they are now (nothing recorded them at the close).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, select

from llm_incident.changes import recent_changes
from llm_incident.controls.models import ControlChange
from llm_incident.controls.service import get_controls
from llm_incident.controls.values import DEFAULT_ENV, ControlState, describe_active
from llm_incident.events.models import Event
from llm_incident.events.redact import redact
from llm_incident.evidence.models import Evidence
from llm_incident.evidence.service import evidence_counts, evidence_order
from llm_incident.incidents.models import Incident
from llm_incident.incidents.postmortem_followups import derive_follow_ups
from llm_incident.incidents.postmortem_model import (
    ActiveMitigation,
    ChangeRow,
    Decision,
    Entry,
    EvidenceCounts,
    EvidenceRow,
    ModelUse,
    Phase,
    Postmortem,
    PromptUse,
    RouteMetrics,
    Spend,
)
from llm_incident.incidents.postmortem_cause import find_culprit, triage_facts
from llm_incident.controls.proof import ControlProof
from llm_incident.incidents.postmortem_phrases import action_text, due_at, when
from llm_incident.incidents.postmortem_snapshot import store, thaw
from llm_incident.incidents.runbook import FOLLOW_UP_PROMPTS
from llm_incident.incidents.service import get_incident, timeline
from llm_incident.metrics.percentiles import raw_rows
from llm_incident.metrics.scope import C, Scope, event_conditions
from llm_incident.metrics.stats import UNKNOWN, WindowStats, stats_for

EXCERPT_CHARS = 120
EVIDENCE_LIMIT = 25
"""Most evidence rows a postmortem lists (bad first); the counts cover all of them."""
CHANGE_LOOKBACK = timedelta(hours=24)


def compile_postmortem(
    session: Session, incident: Incident | int, *, now: datetime,
    evidence_limit: int = EVIDENCE_LIMIT, change_lookback: timedelta = CHANGE_LOOKBACK,
) -> Postmortem:
    """Everything measured and done in `incident` (a number is looked up; IncidentError if none).
    An open incident gives a draft as of `now`; a closed one is what was frozen at its close
    (`postmortem_freeze`), with what happened since as an after-close note."""
    if isinstance(incident, int):
        incident = get_incident(session, incident)
    if incident.closed_at is not None:
        frozen = thaw(session, incident)
        if frozen is not None:
            frozen.after_close = after_close_notes(session, incident, frozen)
            if evidence_limit < len(frozen.evidence):
                frozen.evidence = frozen.evidence[:max(0, evidence_limit)]
            return frozen
    pm = compile_live(session, incident, now=now, evidence_limit=evidence_limit,
                      change_lookback=change_lookback)
    if incident.closed_at is not None:
        pm.after_close = after_close_notes(session, incident, pm)
    return pm


def compile_live(
    session: Session, incident: Incident, *, now: datetime,
    evidence_limit: int = EVIDENCE_LIMIT, change_lookback: timedelta = CHANGE_LOOKBACK,
) -> Postmortem:
    """The postmortem from the store as it is now (the close freezes this one)."""
    end = incident.closed_at or now
    decisions = [d for d in _decisions(session, incident.number) if d.ts <= end]
    raw = [e for e in timeline(session, incident) if e.ts <= end]
    entries = [Entry(e.ts, e.actor, e.kind, e.text) for e in raw]
    routes = _impacted_routes(incident, decisions)
    began = min(incident.onset_at or incident.started_at, incident.started_at)
    # a change inside the onset's minute is the cause's side of the line, not "during"
    cut = began + ONSET_MINUTE if incident.onset_at is not None else began
    first = _first_mitigation(decisions, began, end)
    phases = _phases(began, first, end)
    scope = metrics_scope(incident.envs)
    counts = evidence_counts(session, incident)
    changes = recent_changes(session, routes, until=end,
                             lookback=change_lookback + max(end - began, timedelta()))
    rows = sorted((_change_row(c) for c in changes), key=lambda c: (c.ts, c.route, c.kind))
    metrics = [_route_metrics(session, route, phases, scope) for route in routes]
    pm = Postmortem(
        number=incident.number, symptom=incident.symptom, incident_class=incident.incident_class,
        severity=incident.severity, status=incident.status, commander=incident.commander,
        routes=routes, envs=list(incident.envs), customer_tiers=list(incident.customer_tiers),
        started_at=incident.started_at, closed_at=incident.closed_at, as_of=end,
        onset_at=incident.onset_at, onset_source=incident.onset_source,
        triage=_triage_note(entries),
        first_mitigation_at=first, summary=incident.summary, phases=phases,
        metrics=metrics,
        usage=_usage(session, routes, phases, scope),
        prompt_mix=_prompt_mix(session, routes, phases, scope),
        spend=_spend(metrics, phases),
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
        culprit=find_culprit(session, routes, triage_facts(raw), onset=began,
                             has_onset=incident.onset_at is not None, end=end),
    )
    pm.follow_ups = derive_follow_ups(pm)
    return pm


ONSET_MINUTE = timedelta(minutes=1)


def freeze_postmortem(session: Session, incident: Incident, *, now: datetime) -> Postmortem:
    """Compile the just-closed incident's postmortem and store it as it is now (in the close's
    transaction): every later view reads this one."""
    pm = compile_live(session, incident, now=now)
    store(session, incident, pm)
    pm.frozen = True
    return pm


def after_close_notes(session: Session, incident: Incident, pm: Postmortem) -> list[str]:
    """What changed since the close, for a note under the frozen postmortem: the incident's
    control changes made after it, and controls of its routes that differ now from then."""
    closed = pm.closed_at or pm.as_of
    later = [d for d in _decisions(session, incident.number) if d.ts > closed and d.applied]
    lines = [f"{when(due_at(d, later))} — {action_text(d)}" for d in later]
    then = {(a.route, a.env): a.description for a in pm.still_active}
    keys = list(dict.fromkeys([*((r, DEFAULT_ENV) for r in pm.routes),
                               *((d.route, d.env) for d in pm.decisions + later), *then]))
    for route, env in keys:
        now_text = describe_controls(get_controls(session, route, env))
        if now_text != then.get((route, env), ""):
            where = f"`{route}`" + ("" if env == DEFAULT_ENV else f" ({env})")
            lines.append(f"Now {where}: {now_text or 'back to its default controls'} "
                         f"(at close: {then.get((route, env)) or 'default controls'})")
    return lines


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
                     reason=c.reason, expires_at=c.expires_at, proof=_proof(session, c.id))
            for c in session.exec(stmt)]


def _proof(session: Session, change_id: int) -> str | None:
    """What the instances' acknowledgements of a followed change showed last (one line)."""
    followed = session.get(ControlProof, change_id)
    if followed is None or not followed.shown:
        return None
    return " · ".join(line.strip() for line in followed.shown.splitlines() if line.strip())


def _impacted_routes(incident: Incident, decisions: list[Decision]) -> list[str]:
    """The incident's routes in their order, then other routes its control decisions touched."""
    extra = sorted({d.route for d in decisions} - set(incident.routes))
    return list(dict.fromkeys([*incident.routes, *extra]))


def _first_mitigation(decisions: list[Decision], start: datetime,
                      end: datetime) -> datetime | None:
    """The first applied change that reduced impact (`Decision.mitigates`: a restore or an
    expiry never does), at the earliest at the start."""
    inside = [max(d.ts, start) for d in decisions if d.mitigates and d.ts <= end]
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


def _mix(session: Session, routes: list[str], phases: list[Phase], scope: Scope | None,
         columns: tuple[Any, Any]) -> list[tuple[str, str, str, int, int]]:
    """(route, a, b, baseline calls, incident calls) per value pair of `columns` (the incident:
    start → end), the incident's routes in order, most incident calls first."""
    if not phases or not routes:
        return []
    baseline = phases[0]
    start, end = baseline.start, phases[-1].end
    in_incident = case((C.ts >= baseline.end, 1), else_=0)
    conditions = event_conditions(None, start, end, scope)
    stmt = (select(C.route, *columns, func.count() - func.sum(in_incident),
                   func.sum(in_incident))
            .where(C.route.in_(routes), *conditions)
            .group_by(C.route, *columns))
    order = {route: i for i, route in enumerate(routes)}
    rows = [(route, a or UNKNOWN, b or UNKNOWN, int(before), int(during))
            for route, a, b, before, during in raw_rows(session, stmt)]
    rows.sort(key=lambda r: (order[r[0]], -r[4], -r[3], r[1], r[2]))
    return rows


def _usage(session: Session, routes: list[str], phases: list[Phase],
           scope: Scope | None) -> list[ModelUse]:
    """Calls per (route, model, provider) in the baseline and during the incident (start → end)."""
    return [ModelUse(*row) for row in _mix(session, routes, phases, scope, (C.model, C.provider))]


def _prompt_mix(session: Session, routes: list[str], phases: list[Phase],
                scope: Scope | None) -> list[PromptUse]:
    """Calls per (route, prompt_id, prompt_version) before and during the incident."""
    return [PromptUse(*row)
            for row in _mix(session, routes, phases, scope, (C.prompt_id, C.prompt_version))]


def _spend(metrics: list[RouteMetrics], phases: list[Phase]) -> list[Spend]:
    """Per route: what the incident (start → end) cost against the baseline's rate."""
    if not phases:
        return []
    base = phases[0]
    out = []
    for m in metrics:
        incident = [s for s in (m.during, m.after) if s is not None]
        out.append(Spend(
            route=m.route, baseline_usd=m.baseline.total_cost_usd if m.baseline else 0.0,
            baseline_seconds=(base.end - base.start).total_seconds(),
            incident_usd=sum(s.total_cost_usd for s in incident),
            incident_seconds=(phases[-1].end - base.end).total_seconds()))
    return out


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
            duration_ms=event.duration_ms if event else None,
            excerpt=_excerpt(event.output_excerpt if event else None)))
    return out


def _excerpt(text: str | None) -> str | None:
    """The output excerpt as the evidence table shows it: redacted (again: rows stored before
    redaction existed), on one line, at most EXCERPT_CHARS."""
    if not text:
        return None
    line = " ".join(redact(text).split())
    return line if len(line) <= EXCERPT_CHARS else line[: EXCERPT_CHARS - 1] + "…"


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
