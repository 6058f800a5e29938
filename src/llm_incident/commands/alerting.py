"""`/llm-incident alerts`: the rules and their state; `alerts start N`: an incident from alert N."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from llm_incident.alerts import service as alerts
from llm_incident.alerts.evaluate import CRITICAL, OK, observe_all, series
from llm_incident.alerts.models import AlertNotification
from llm_incident.alerts.rules import DEFAULT_RULES, METRICS, AlertRule
from llm_incident.commands.context import Context, Delivery
from llm_incident.commands import alert_views
from llm_incident.commands.alert_views import sparkline
from llm_incident.commands.parse import Alerts, Start
from llm_incident.commands.replies import Outcome, Post, Target
from llm_incident.db import Database
from llm_incident.incidents.models import Severity
from llm_incident.incidents import service as incidents
from llm_incident.incidents.service import IncidentError


@dataclass(frozen=True)
class AlertConfig:
    """What the commands need to know about alerting."""

    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    channel: str | None = None  # LLM_INCIDENT_ALERT_CHANNEL; without it alerts are not posted
    interval_seconds: int = 60  # (they are still evaluated, stored and shown)


# start(command, context, severity=…, trigger=…) → Outcome (CommandCore._start)
Starter = Callable[..., Outcome]


class AlertCommands:
    def __init__(self, db: Database, config: AlertConfig, start: Starter,
                 delivery: Delivery) -> None:
        self.db, self.config, self.start, self.delivery = db, config, start, delivery

    def run(self, cmd: Alerts, ctx: Context) -> Outcome:
        if cmd.start is None:
            return self.show(ctx.now)
        return self.start_from(cmd.start, ctx)

    def show(self, now: datetime) -> Outcome:
        """The rules, the stored states, and what an evaluation now sees short of firing (the
        same evaluation as `llm-incident alerts check --dry-run`, so the two agree)."""
        with self.db.read() as session:
            stored = alerts.states(session)
            seen = observe_all(session, self.config.rules, now)
        return Outcome(reply=alert_views.alerts_list_reply(
            self.config.rules, stored, channel=self.config.channel,
            interval=self.config.interval_seconds, observations=seen))

    def start_from(self, alert_id: int, ctx: Context) -> Outcome:
        """Start an incident pre-filled from the alert: its route, the class its metric points
        to, the alert line as symptom. Pressing twice (or two people) gives the same incident."""
        with self.db.read() as session:
            note = alerts.get_notification(session, alert_id)
        if note is None:
            raise IncidentError(f"there is no alert {alert_id}; `alerts` lists what is firing")
        if note.level == OK:
            raise IncidentError(f"alert {alert_id} is a resolved notice; nothing to start")
        rule = alerts.rule_for(self.config.rules, note.rule_id)
        symptom = alert_views.alert_text(note, rule).split(" ", 2)[-1]  # without icon and level
        command = Start(routes=(note.route,), incident_class=METRICS[note.metric].incident_class,
                        symptom=f"{note.level}: {symptom}")
        severity = Severity.sev1 if note.level == CRITICAL else Severity.sev2
        trigger = {"alert": note.id, "rule": note.rule_id, "metric": note.metric,
                   "route": note.route, "level": note.level}
        if note.onset is not None:  # the incident inherits the alert's onset
            trigger["onset"] = alerts.aware_utc(note.onset).isoformat()
        with self.db.read() as session:
            first = incidents.by_request_key(session, f"alert:{note.id}") is None
        outcome = self.start(command, replace(ctx, request_key=f"alert:{note.id}"),
                             severity=severity, trigger=trigger)
        if first and note.incident_number is None and self.config.channel:
            self._mark_started(note, rule)
        return outcome

    def _mark_started(self, note: AlertNotification, rule: AlertRule | None) -> None:
        """Edit the alert in the channel: who started which incident, and no Start button."""
        with self.db.write() as session:
            incident = incidents.by_request_key(session, f"alert:{note.id}")
            if incident is None:
                return
            trend = sparkline(series(session, rule, note.route, note.ts)) if rule else ""
            reply = alert_views.alert_reply(note, rule, trend=trend, incident=incident.number,
                                            started_by=incident.commander)
            self.delivery.enqueue(session, [Post(None, Target.channel, reply,
                                                 key=f"alert:{note.id}", replace=True,
                                                 channel=self.config.channel)])
