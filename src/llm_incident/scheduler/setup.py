"""Build the scheduler's parts from settings (used by `create_app` and the `alerts` CLI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from llm_incident.alerts.rules import load_rules
from llm_incident.commands.alerting import AlertConfig
from llm_incident.db import Database
from llm_incident.observability import ServiceMetrics
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.leader import Leadership
from llm_incident.scheduler.runner import Scheduler
from llm_incident.settings import Settings


@dataclass
class SchedulerParts:
    context: JobContext
    alert_config: AlertConfig
    scheduler: Scheduler | None  # None with LLM_INCIDENT_SCHEDULER=false


def job_context(settings: Settings, db: Database) -> JobContext:
    """Rules from LLM_INCIDENT_ALERT_RULES (RuleError when unusable); no delivery yet."""
    return JobContext(db=db, rules=load_rules(settings.alert_rules),
                      alert_channel=settings.alert_channel,
                      reminder_minutes=dict(settings.status_reminder_minutes),
                      mitigation_check_minutes=settings.mitigation_check_minutes,
                      followup_days=settings.followup_days,
                      event_retention=settings.event_retention,
                      rollup_retention=settings.rollup_retention)


def build_scheduler(settings: Settings, db: Database, clock: Callable[[], datetime],
                    metrics: ServiceMetrics | None = None, time_scale: float = 1.0) -> SchedulerParts:
    jc = job_context(settings, db)
    config = AlertConfig(rules=jc.rules, channel=settings.alert_channel,
                         interval_seconds=settings.alert_interval_seconds)
    scheduler = None
    if settings.scheduler:
        scheduler = Scheduler(jc, leadership=Leadership(db), alerts_on=True,
                              alert_interval_seconds=settings.alert_interval_seconds, clock=clock,
                              metrics=metrics, time_scale=time_scale)
    return SchedulerParts(jc, config, scheduler)
