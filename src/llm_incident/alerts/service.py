"""Alert state: one notification per state change (ok → warning → critical → resolved), never
a repeat per evaluation, and never two for the same change however many evaluators race.

The stored level is the level last notified. An observation at another level becomes a
notification unless the rule's cooldown since the last notification is still running — then only
a change to critical goes out at once; anything else waits for the cooldown and is sent then if
it still holds (a flapping route does not flood the channel, and a route that breaks again
right after recovering still pages; a route gone quiet has its states resolved at once). Each
notification bumps the state's `version` with a
compare-and-set, and the notification row is unique per (rule, route, version).

A warning seen for the first time is stored as the state's `pending` (no notification, no
version bump); the next evaluation that sees it notifies it (see `alerts.evaluate`). A notified
warning or critical keeps the onset of its shift (`onset`), which the notification row carries
for the incident started from it.

`changes()` picks the observations that differ from the stored levels or pending warnings (one
query, outside any write transaction); `record()` then writes only those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from llm_incident.alerts.evaluate import CRITICAL, OK, RANK, STALE, Observation
from llm_incident.alerts.models import AlertNotification, AlertState
from llm_incident.alerts.rules import AlertRule


@dataclass(frozen=True)
class Pending:
    """A change seen but held back by the cooldown (shown by `alerts`)."""

    observation: Observation
    stored: str
    until: datetime


def _state(session: Session, rule_id: str, route: str) -> AlertState | None:
    return session.get(AlertState, (rule_id, route), populate_existing=True)


def aware_utc(ts: datetime | None) -> datetime | None:
    """How the tables take time: aware UTC."""
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def stored_levels(session: Session) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(rule id, route) → (stored level, pending warning), for every state."""
    rows = session.exec(select(AlertState.rule_id, AlertState.route, AlertState.level,
                               AlertState.pending))
    return {(rule_id, route): (level, pending) for rule_id, route, level, pending in rows}


def changes(session: Session, observations: list[Observation]) -> list[Observation]:
    """The judged observations whose level or pending warning differs from the stored one."""
    stored = stored_levels(session)
    return [o for o in observations if o.level is not None
            and (o.level, o.pending) != stored.get((o.rule.id, o.route), (OK, None))]


def decide(observation: Observation, state: AlertState | None,
           now: datetime) -> tuple[bool, datetime | None]:
    """(notify now?, cooldown end when held back)."""
    stored = state.level if state else OK
    if observation.level is None or observation.level == stored:
        return False, None
    if state is None or state.notified_at is None:
        return True, None
    until = state.notified_at + observation.rule.cooldown_span
    if now >= until or observation.level == CRITICAL or observation.status == STALE:
        return True, None
    return False, until


def record(session: Session, observations: list[Observation],
           now: datetime) -> tuple[list[AlertNotification], list[Pending]]:
    """Store the notified changes among `observations` (in the caller's transaction); the new
    notifications, and the changes the cooldown holds back."""
    sent: list[AlertNotification] = []
    held: list[Pending] = []
    for obs in observations:
        state = _state(session, obs.rule.id, obs.route)
        if obs.level == (state.level if state else OK):
            _set_pending(session, obs, state, now)
            continue
        notify, until = decide(obs, state, now)
        if until is not None:
            held.append(Pending(obs, state.level if state else OK, until))
        if not notify:
            continue
        note = _store(session, obs, state, now)
        if note is not None:
            sent.append(note)
    return sent, held


def _set_pending(session: Session, obs: Observation, state: AlertState | None,
                 now: datetime) -> None:
    """Keep (or clear) a warning awaiting confirmation; no notification, no version bump."""
    if state is None:
        if obs.pending is None:
            return
        state = AlertState(rule_id=obs.rule.id, route=obs.route, level=OK, since=now)
    state.pending = obs.pending
    state.pending_since = aware_utc(now) if obs.pending else None
    session.add(state)
    session.flush()


def _store(session: Session, obs: Observation, state: AlertState | None,
           now: datetime) -> AlertNotification | None:
    """Compare-and-set the state to the observed level plus the notification row; None when
    another evaluator stored this change first."""
    previous = state.level if state else OK
    version = (state.version if state else 0) + 1
    onset = aware_utc(obs.onset) if obs.level != OK else None
    fields = dict(level=obs.level, since=now, notified_at=now, value=obs.value,
                  baseline=obs.baseline, version=version, onset=onset, pending=None,
                  pending_since=None)
    try:
        with session.begin_nested():
            if state is None:
                session.add(AlertState(rule_id=obs.rule.id, route=obs.route, **fields))
                session.flush()
            else:
                result = session.connection().execute(
                    update(AlertState)
                    .where(AlertState.rule_id == obs.rule.id, AlertState.route == obs.route,
                           AlertState.version == state.version)
                    .values(**fields))
                if result.rowcount != 1:
                    return None
            note = AlertNotification(
                rule_id=obs.rule.id, route=obs.route, version=version, metric=obs.rule.metric,
                label=obs.rule.label(), previous_level=previous, level=obs.level,
                value=obs.value, baseline=obs.baseline, calls=obs.calls, window=obs.rule.window,
                ts=now, onset=aware_utc(obs.onset), basis=obs.basis[:200] or None,
                reason=obs.reason[:200] or None)
            session.add(note)
            session.flush()
    except IntegrityError:
        return None
    return note


def states(session: Session) -> list[AlertState]:
    """Every stored state, worst first."""
    rows = list(session.exec(select(AlertState)))
    return sorted(rows, key=lambda s: (-RANK.get(s.level, 0), s.rule_id, s.route))


def get_notification(session: Session, notification_id: int) -> AlertNotification | None:
    return session.get(AlertNotification, notification_id)


def rule_for(rules: tuple[AlertRule, ...] | list[AlertRule], rule_id: str) -> AlertRule | None:
    return next((r for r in rules if r.id == rule_id), None)
