"""The console as an alert sink: it evaluates the rules when due (as the scheduler does) and shows
every new alert — from its own evaluation or from a server's — with its Start button.

On the first poll it shows what is firing now (the last notification of each firing state); after
that every notification it has not shown yet, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import select

from llm_incident.alerts import service as alerts
from llm_incident.alerts.evaluate import OK, series
from llm_incident.alerts.models import AlertNotification, AlertState
from llm_incident.commands import alert_views
from llm_incident.commands.replies import Reply
from llm_incident.scheduler.alert_job import run_alerts
from llm_incident.scheduler.context import JobContext


@dataclass(frozen=True)
class ShownAlert:
    """One alert for the console: where it went, and the message (buttons not numbered yet)."""

    where: str
    reply: Reply
    incident: int | None


class ConsoleAlerts:
    """Evaluate every `interval_seconds` (with `evaluate`), then yield the alerts not shown yet."""

    def __init__(self, jc: JobContext, *, interval_seconds: int, evaluate: bool = True) -> None:
        self.jc, self.evaluate = jc, evaluate
        self.interval = timedelta(seconds=interval_seconds)
        self.last_run: datetime | None = None
        self.shown_up_to: int | None = None  # the highest notification id shown

    def poll(self, now: datetime) -> list[ShownAlert]:
        if self.evaluate and (self.last_run is None or now - self.last_run >= self.interval):
            run_alerts(self.jc, now)
            self.last_run = now
        with self.jc.db.read() as session:
            if self.shown_up_to is None:
                notes = self._firing(session)
                newest = session.exec(select(func.max(AlertNotification.id))).one()
            else:
                notes = list(session.exec(select(AlertNotification)
                                          .where(AlertNotification.id > self.shown_up_to)
                                          .order_by(AlertNotification.id)))
                newest = max((n.id for n in notes), default=self.shown_up_to)
            self.shown_up_to = newest or 0
            return [self._shown(session, note) for note in notes]

    def _firing(self, session) -> list[AlertNotification]:  # noqa: ANN001 - a Session
        states = session.exec(select(AlertState).where(AlertState.level != OK))
        notes = []
        for state in states:
            note = session.exec(select(AlertNotification)
                                .where(AlertNotification.rule_id == state.rule_id,
                                       AlertNotification.route == state.route,
                                       AlertNotification.version == state.version)).first()
            if note is not None:
                notes.append(note)
        return sorted(notes, key=lambda n: n.id)

    def _shown(self, session, note: AlertNotification) -> ShownAlert:  # noqa: ANN001
        rule = alerts.rule_for(self.jc.rules, note.rule_id)
        trend = alert_views.sparkline(series(session, rule, note.route, note.ts)) if rule else ""
        reply = alert_views.alert_reply(note, rule, trend=trend, incident=note.incident_number)
        where = (f"in incident #{note.incident_number}'s thread" if note.incident_number
                 else self.jc.alert_channel and f"to {self.jc.alert_channel}" or "alerts")
        return ShownAlert(where, reply, note.incident_number)
