"""The storage job: roll up new events (rollups never more than a run behind), then delete what is
past retention (LLM_INCIDENT_EVENT_RETENTION for raw events, LLM_INCIDENT_ROLLUP_RETENTION for
rollups), each in bounded batches; client instances unheard of for a week are forgotten. On
PostgreSQL with a partitioned `events` table, day partitions are created ahead and whole days past
retention dropped first (their evidence events kept); the batched delete then only works in the
default partition, so a day's rows stay until the whole day is past retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from llm_incident.controls.instances import ClientInstance, delete_older_than
from llm_incident.events.partitions import DEFAULT
from llm_incident.events.retention import PurgeResult, purge_events
from llm_incident.rollups.build import RollupRun, purge_rollups, roll_up, rolled_up_to
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.partitions import PartitionRun, keep_partitions

STORAGE_SECONDS = 20
INSTANCE_RETENTION = timedelta(days=7)  # GET /v1/instances shows the last 24 h


@dataclass(frozen=True)
class RetentionPolicy:
    events: timedelta
    rollups: timedelta


@dataclass(frozen=True)
class StorageRun:
    rollups: RollupRun
    events: PurgeResult
    rollups_deleted: int
    partitions: PartitionRun = PartitionRun()


def policy_of(jc: JobContext) -> RetentionPolicy:
    """The job context's policy when it carries one (`jc.retention`, tests), else its settings'."""
    policy = getattr(jc, "retention", None)
    if isinstance(policy, RetentionPolicy):
        return policy
    return RetentionPolicy(jc.event_retention, jc.rollup_retention)


def run_storage(jc: JobContext, now: datetime) -> StorageRun:
    """Roll up what arrived, then purge what is past retention at `now` (one bounded run)."""
    policy = policy_of(jc)
    events_cutoff = now - policy.events
    rolled = roll_up(jc.db, now, frozen_before=events_cutoff)
    with jc.db.read() as session:
        up_to_id = rolled_up_to(session)
    days = keep_partitions(jc.db, now, events_cutoff, up_to_id)
    # only what is rolled up; with day partitions only the default one row by row (days go whole)
    purged = purge_events(jc.db, events_cutoff, up_to_id=up_to_id,
                          partition=DEFAULT if days.partitioned else None)
    forget_instances(jc, now)
    return StorageRun(rolled, purged, purge_rollups(jc.db, now - policy.rollups), days)


def forget_instances(jc: JobContext, now: datetime) -> int:
    """Client instances not heard from for `INSTANCE_RETENTION` are forgotten (a write only
    when there is one); how many."""
    before = now - INSTANCE_RETENTION
    with jc.db.read() as session:
        if session.exec(select(ClientInstance.id).where(ClientInstance.last_seen < before)).first() is None:
            return 0
    with jc.db.write() as session:
        return delete_older_than(session, before)
