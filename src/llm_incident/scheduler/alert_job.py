"""The alert job: evaluate every rule, store the state changes, post one message per change.

Evaluation, the comparison with the stored levels and the sparklines of what changed are read in
one transaction; only when something changed, the changes, their notification rows and their
posts are written in a short second one (compare-and-set on the state, so a racing evaluator adds
nothing; on SQLite ingest waits only for that short write). A route
with an open incident gets the alert in the incident's thread (and timeline) instead of the
alert channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from llm_incident.alerts import service as alerts
from llm_incident.alerts.evaluate import Observation, observe_all, series
from llm_incident.alerts.models import AlertNotification
from llm_incident.commands import alert_views
from llm_incident.commands.replies import Post, Target
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident
from llm_incident.scheduler.context import JobContext


@dataclass
class AlertRun:
    """What one evaluation saw, notified, and held back by cooldowns."""

    observations: list[Observation]
    notifications: list[AlertNotification] = field(default_factory=list)
    held: list[alerts.Pending] = field(default_factory=list)


def run_alerts(jc: JobContext, now: datetime, *, dry_run: bool = False) -> AlertRun:
    """One evaluation at `now`; with `dry_run` nothing is stored or posted."""
    with jc.db.read() as session:
        observations = observe_all(session, jc.rules, now, memo=jc.baselines)
        if dry_run:
            return AlertRun(observations)
        changed = alerts.changes(session, observations)
        trends = {(o.rule.id, o.route): alert_views.sparkline(series(session, o.rule, o.route, now))
                  for o in changed}
    if not changed:
        return AlertRun(observations)
    with jc.db.write() as session:  # short: only the changes, their rows and their posts
        sent, held = alerts.record(session, changed, now)
        posts = [_post(session, jc, note, trends.get((note.rule_id, note.route), ""), now)
                 for note in sent]
        posts = [p for p in posts if p is not None]
        if jc.delivery is not None and posts:
            jc.delivery.enqueue(session, posts)
    return AlertRun(observations, sent, held)


def _open_incident(session: Session, route: str) -> Incident | None:
    return next((i for i in incidents.list_open(session) if route in i.routes), None)


def _post(session: Session, jc: JobContext, note: AlertNotification, trend: str,
          now: datetime) -> Post | None:
    rule = alerts.rule_for(jc.rules, note.rule_id)
    incident = _open_incident(session, note.route)
    if incident is not None:
        note.incident_number = incident.number
        session.add(note)
        reply = alert_views.alert_reply(note, rule, trend=trend, incident=incident.number)
        incidents.add_timeline(session, incident, actor=jc.actor, kind="alert", now=now,
                               text=reply.text, after={"alert": note.id, "level": note.level})
        return Post(incident.number, Target.thread, reply, key=f"alert:{note.id}")
    if not jc.alert_channel:
        return None
    reply = alert_views.alert_reply(note, rule, trend=trend)
    return Post(None, Target.channel, reply, key=f"alert:{note.id}", channel=jc.alert_channel)
