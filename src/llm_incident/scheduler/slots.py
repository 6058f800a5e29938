"""Claim a job slot inside the caller's transaction: True once per (job, slot), ever."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from llm_incident.scheduler.models import JobSlot


def claim_slot(session: Session, job: str, slot: str, *, now: datetime) -> bool:
    """Insert the (job, slot) row; False when it exists (done already, or by a concurrent
    transaction). The sends of the slot go in the same transaction, so they happen once."""
    if session.get(JobSlot, (job, slot[:200])) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(JobSlot(job=job, slot=slot[:200], done_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True
