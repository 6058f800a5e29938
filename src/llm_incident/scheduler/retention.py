"""The retention job: raw events older than LLM_INCIDENT_EVENT_RETENTION go, in bounded batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from llm_incident.events.retention import PurgeResult, purge_events
from llm_incident.scheduler.context import JobContext
from llm_incident.settings import load_settings

RETENTION_SECONDS = 300


@dataclass(frozen=True)
class RetentionPolicy:
    events: timedelta
    rollups: timedelta

    @classmethod
    def from_settings(cls) -> RetentionPolicy:
        settings = load_settings()
        return cls(settings.event_retention, settings.rollup_retention)


def policy_of(jc: JobContext) -> RetentionPolicy:
    """The job context's policy when it carries one (`jc.retention`), else the settings'."""
    policy = getattr(jc, "retention", None)
    return policy if isinstance(policy, RetentionPolicy) else RetentionPolicy.from_settings()


def run_retention(jc: JobContext, now: datetime) -> PurgeResult:
    """Purge what is past retention at `now`; at most one bounded run's worth."""
    policy = policy_of(jc)
    return purge_events(jc.db, now - policy.events)
