"""The storage job: roll up new events (rollups never more than a run behind), then delete what is
past retention (LLM_INCIDENT_EVENT_RETENTION for raw events, LLM_INCIDENT_ROLLUP_RETENTION for
rollups), each in bounded batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from llm_incident.events.retention import PurgeResult, purge_events
from llm_incident.rollups.build import RollupRun, purge_rollups, roll_up, rolled_up_to
from llm_incident.scheduler.context import JobContext
from llm_incident.settings import load_settings

STORAGE_SECONDS = 20


@dataclass(frozen=True)
class RetentionPolicy:
    events: timedelta
    rollups: timedelta

    @classmethod
    def from_settings(cls) -> RetentionPolicy:
        settings = load_settings()
        return cls(settings.event_retention, settings.rollup_retention)


@dataclass(frozen=True)
class StorageRun:
    rollups: RollupRun
    events: PurgeResult
    rollups_deleted: int


def policy_of(jc: JobContext) -> RetentionPolicy:
    """The job context's policy when it carries one (`jc.retention`), else the settings'."""
    policy = getattr(jc, "retention", None)
    return policy if isinstance(policy, RetentionPolicy) else RetentionPolicy.from_settings()


def run_storage(jc: JobContext, now: datetime) -> StorageRun:
    """Roll up what arrived, then purge what is past retention at `now` (one bounded run)."""
    policy = policy_of(jc)
    events_cutoff = now - policy.events
    rolled = roll_up(jc.db, now, frozen_before=events_cutoff)
    with jc.db.read() as session:
        up_to_id = rolled_up_to(session)
    purged = purge_events(jc.db, events_cutoff, up_to_id=up_to_id)  # only what is rolled up
    return StorageRun(rolled, purged, purge_rollups(jc.db, now - policy.rollups))
