"""Proof of application: did the instances guarding a route apply a control change, and did traffic stop?

A change made in an incident is followed (`follow`) for `FOLLOW_FOR`: its acknowledgement is tallied from
the instances' reports ("kill applied by 3/3 instances in 0.4 s", "2 of 3 applied; web-7 last seen 14:02
(stale)") and, for a kill, the route's events say whether upstream calls stopped ("traffic on
`support.reply` stopped 14:21:07 UTC (0 upstream calls since)"). The acknowledgement is frozen once every
instance applied (later changes must not rewrite how fast this one went out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, or_
from sqlmodel import Field, Session, SQLModel, select

from llm_incident.controls.instances import applied_version, is_stale, list_instances
from llm_incident.controls.models import ControlChange, Outcome
from llm_incident.events.models import Event

FOLLOW_FOR = timedelta(minutes=10)
ACTIVE_BEFORE = timedelta(minutes=10)  # instances seen this long before a change are expected to apply it
TRAFFIC_LOOKBACK = timedelta(hours=1)
KILLED_CODES = ("killed", "route_killed")  # events an SDK may record for calls it answered with the fallback
MAX_NAMES = 3


class ControlProof(SQLModel, table=True):
    """A control change made in an incident whose thread line is kept up to date with its proof."""

    __tablename__ = "control_proofs"

    change_id: int = Field(primary_key=True, foreign_key="control_changes.id")
    incident_number: int = Field(nullable=False, index=True)
    route: str = Field(max_length=200, nullable=False)
    env: str = Field(max_length=100, nullable=False)
    version: int = Field(nullable=False)  # the controls' version after the change
    verb: str = Field(max_length=20, nullable=False)  # "kill", "restore", "change"
    line: str = Field(nullable=False)  # the thread line as first posted
    changed_at: datetime = Field(nullable=False)
    ack: str | None = None  # the acknowledgement once frozen
    acked_at: datetime | None = None  # when the last instance applied it
    shown: str | None = None  # the proof as last posted
    done: bool = Field(default=False, nullable=False, index=True)


@dataclass(frozen=True)
class Tally:
    """How the instances guarding a route stand on one version."""

    total: int
    applied: int
    seconds: float | None  # change -> the last application among instances connected before it
    stale: tuple[tuple[str, datetime], ...]  # (name, last seen) of stale instances that have not applied
    waiting: tuple[str, ...]  # names of live instances that have not applied yet

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.applied == self.total


def verb_of(after: dict) -> str:
    """"kill", "restore" or "change", for "kill applied by …"."""
    if after.get("enabled") is False:
        return "kill"
    if after.get("enabled") is True and all(v is None for k, v in after.items() if k != "enabled"):
        return "restore"
    return "change"


def follow(session: Session, *, incident: int, change_id: int, route: str, env: str, version: int,
           after: dict, line: str, changed_at: datetime) -> ControlProof:
    """Start following a change's application (in the change's own transaction)."""
    row = ControlProof(change_id=change_id, incident_number=incident, route=route, env=env, version=version,
                       verb=verb_of(after), line=line, changed_at=changed_at)
    session.add(row)
    return row


def tally(session: Session, route: str, env: str, version: int, changed_at: datetime,
          now: datetime) -> Tally:
    """The instances guarding `route` in `env` seen since shortly before the change, against `version`."""
    rows = list_instances(session, env=env, route=route, seen_since=changed_at - ACTIVE_BEFORE)
    names = _display_names(rows)
    applied, stale, waiting, times = 0, [], [], []
    for row in rows:
        held = applied_version(row, route)
        if held is not None and held[0] >= version:
            applied += 1
            if row.first_seen <= changed_at:
                times.append(max((held[1] - changed_at).total_seconds(), 0.0))
        elif is_stale(row, now):
            stale.append((names[row.id], row.last_seen))
        else:
            waiting.append(names[row.id])
    return Tally(total=len(rows), applied=applied, seconds=max(times) if times else None,
                 stale=tuple(sorted(stale, key=lambda s: s[0])), waiting=tuple(sorted(waiting)))


def _display_names(rows) -> dict[str, str]:
    """Instance names, with the pid (or id) added where two share a name."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.name] = counts.get(row.name, 0) + 1
    return {row.id: row.name if counts[row.name] == 1 else f"{row.name} (pid {row.pid or row.id[:8]})"
            for row in rows}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def ack_line(verb: str, route: str, t: Tally) -> str:
    """"kill applied by 3/3 instances in 0.4 s", "2 of 3 applied; web-7 last seen 14:02 (stale)"…"""
    if t.total == 0:
        return f"⏳ no instance guarding `{route}` has reported yet"
    if t.complete:
        took = f" in {t.seconds:.1f} s" if t.seconds is not None else ""
        return f"✅ {verb} applied by {t.total}/{t.total} instances{took}"
    parts = [f"{t.applied} of {t.total} applied" + ("" if t.stale else " so far")]
    if t.stale:
        parts.append(", ".join(f"{name} last seen {seen:%H:%M} (stale)"
                               for name, seen in t.stale[:MAX_NAMES])
                     + (f" and {len(t.stale) - MAX_NAMES} more stale" if len(t.stale) > MAX_NAMES else ""))
    if t.waiting:
        parts.append(f"waiting for {_names(list(t.waiting))}")
    return ("⚠️ " if t.stale else "⏳ ") + "; ".join(parts)


def _upstream(route: str, env: str):
    return (Event.route == route, Event.env == env,
            or_(Event.error_code.is_(None), Event.error_code.not_in(KILLED_CODES)))


def traffic_line(session: Session, route: str, env: str, changed_at: datetime,
                 applied_at: datetime | None, until: datetime | None = None) -> str:
    """From the events: when upstream calls on the route stopped, or how many came after the kill (and
    before `until`, the route's next change)."""
    since = max(applied_at or changed_at, changed_at)
    later = [Event.ts > since] + ([Event.ts < until] if until is not None else [])
    after_count, after_last = session.exec(
        select(func.count(), func.max(Event.ts)).where(*_upstream(route, env), *later)).one()
    if after_count:
        calls = "call" if after_count == 1 else "calls"
        return (f"⚠️ traffic on `{route}` has not stopped: {after_count} upstream {calls} since the kill "
                f"was applied, the last at {_utc(after_last):%H:%M:%S} UTC")
    last = session.exec(select(func.max(Event.ts)).where(
        *_upstream(route, env), Event.ts <= since, Event.ts >= changed_at - TRAFFIC_LOOKBACK)).one()
    if last is None:
        return f"no upstream calls on `{route}` since the kill"
    return f"traffic on `{route}` stopped {_utc(last):%H:%M:%S} UTC (0 upstream calls since)"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def applied_at(t: Tally, changed_at: datetime) -> datetime | None:
    """When the last instance applied the change (None until every instance did)."""
    if not t.complete:
        return None
    return changed_at + timedelta(seconds=t.seconds or 0.0)


def next_change_at(session: Session, proof: ControlProof) -> datetime | None:
    """When the route's controls next changed after this change, if they did."""
    return session.exec(select(ControlChange.ts).where(
        ControlChange.route == proof.route, ControlChange.env == proof.env, ControlChange.id > proof.change_id,
        ControlChange.outcome == Outcome.applied.value).order_by(ControlChange.id)).first()


@dataclass(frozen=True)
class Refreshed:
    """A followed change as of now: the proof text, the acknowledgement (frozen once complete) and when it
    completed, and whether following it is over."""

    text: str
    ack: str | None
    acked_at: datetime | None
    done: bool


def refresh(session: Session, proof: ControlProof, now: datetime) -> Refreshed:
    """The proof lines for the thread as of `now` (reads only). The acknowledgement freezes once complete;
    following ends once the change is older than FOLLOW_FOR, or complete and superseded."""
    until = next_change_at(session, proof)
    frozen, acked_at = proof.ack, proof.acked_at
    if frozen is None:
        t = tally(session, proof.route, proof.env, proof.version, proof.changed_at, now)
        ack = ack_line(proof.verb, proof.route, t)
        if t.complete:
            frozen, acked_at = ack, applied_at(t, proof.changed_at)
    else:
        ack = frozen
    lines = [ack]
    if proof.verb == "kill":
        lines.append(traffic_line(session, proof.route, proof.env, proof.changed_at, acked_at, until))
    done = now - proof.changed_at > FOLLOW_FOR or (frozen is not None and until is not None)
    return Refreshed("\n".join(lines), frozen, acked_at, done)


def proof_for_change(session: Session, change_id: int, now: datetime) -> str | None:
    """The proof of one followed change (postmortem actions, panels); None when it was not followed."""
    proof = session.get(ControlProof, change_id)
    if proof is None:
        return None
    return proof.shown or refresh(session, proof, now).text


def latest_proof(session: Session, route: str, env: str) -> ControlProof | None:
    """The newest followed change of a route (what its panel shows)."""
    return session.exec(select(ControlProof).where(ControlProof.route == route, ControlProof.env == env)
                        .order_by(ControlProof.change_id.desc())).first()


def open_proofs(session: Session) -> list[int]:
    return list(session.exec(select(ControlProof.change_id).where(ControlProof.done.is_(False))
                             .order_by(ControlProof.change_id)))
