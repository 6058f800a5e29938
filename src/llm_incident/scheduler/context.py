"""What every scheduled job gets: the store, where posts go, the rules and the timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from llm_incident.alerts.evaluate import BaselineMemo
from llm_incident.alerts.rules import DEFAULT_RULES, AlertRule
from llm_incident.commands.context import Delivery
from llm_incident.db import Database
from llm_incident.settings import REMINDER_MINUTES


@dataclass
class JobContext:
    """`delivery` None: nothing is posted (Slack off), state is still kept."""

    db: Database
    delivery: Delivery | None = None
    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    alert_channel: str | None = None
    reminder_minutes: dict[str, int] = field(
        default_factory=lambda: dict(REMINDER_MINUTES))
    mitigation_check_minutes: int = 5
    followup_days: int = 7
    actor: str = "llm-incident"  # who the timeline says acted
    event_retention: timedelta = timedelta(days=30)  # LLM_INCIDENT_EVENT_RETENTION
    rollup_retention: timedelta = timedelta(days=400)  # LLM_INCIDENT_ROLLUP_RETENTION
    baselines: BaselineMemo = field(default_factory=BaselineMemo)  # alert baselines, kept 5 min
