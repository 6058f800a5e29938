"""Job slots: `claim_slot` inside the caller's transaction is True once per (job, slot), ever;
`unclaimed` filters candidates in a read first, so a job with nothing due writes nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

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


def unclaimed(session: Session, job: str, slots: list[str]) -> list[str]:
    """The `slots` of `job` not claimed yet, in their order."""
    if not slots:
        return []
    keys = [slot[:200] for slot in slots]
    done = set(session.exec(select(JobSlot.slot).where(JobSlot.job == job,
                                                        JobSlot.slot.in_(keys))))
    return [slot for slot, key in zip(slots, keys, strict=True) if key not in done]
