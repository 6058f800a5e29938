"""Reading and changing route controls: compare-and-set on `version`, every attempt audited, expiry.

Plain values in, plain values out; the caller owns the transaction (`Database.write()`). A committed change
leaves `(route, env)` in `session.info[CHANGED_KEY]` so after-commit hooks can wake long-polls.

Expiry: a change may carry `expires_at`. A field's value is that of the newest applied change touching it
which has not expired (defaults when there is none), so when a temporary change runs out the field falls back
to what was in force underneath it — a permanent change made meanwhile stays. `RouteControl.expires_at` is the
soonest expiry among the changes currently in force; `revert_expired` applies what has run out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from llm_incident.controls.models import ChangeKind, ControlChange, Outcome, RouteControl
from llm_incident.controls.values import (
    DEFAULT_ENV,
    DEFAULTS,
    FIELDS,
    ControlError,
    ControlState,
    validate_actor,
    validate_changes,
    validate_expiry,
    validate_key,
)
from llm_incident.events.routes import is_known_route, known_routes

CHANGED_KEY = "llm_incident.controls_changed"
EXPIRY_ACTOR = "llm-incident"
MAX_REASON_CHARS = 2000

__all__ = [
    "CHANGED_KEY", "ChangeResult", "ControlError", "ControlState", "Reverted", "change_controls",
    "control_history", "controls_fingerprint", "get_controls", "list_controls", "record_refusal",
    "any_expired",
    "revert_expired",
]


@dataclass(frozen=True)
class ChangeResult:
    """What a change request came to. `controls` is the state after it (or the unchanged current state)."""

    outcome: Outcome
    controls: ControlState
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    change_id: int | None = None
    warnings: tuple[str, ...] = ()
    raced: ControlChange | None = None  # on a conflict: the newest change it lost to


    @property
    def applied(self) -> bool:
        return self.outcome is Outcome.applied


@dataclass(frozen=True)
class Reverted:
    """A route whose temporary changes ran out: the fields put back, and the changes that expired."""

    route: str
    env: str
    before: dict[str, Any]
    after: dict[str, Any]
    version: int
    incident: int | None
    expired_changes: tuple[int, ...]
    controls: ControlState


def _state(row: RouteControl | None, route: str, env: str) -> ControlState:
    if row is None:
        return ControlState(route=route, env=env)
    return ControlState(
        route=row.route, env=row.env, enabled=row.enabled, max_tokens=row.max_tokens, model=row.model,
        provider=row.provider, retry_cap=row.retry_cap, fallback_message=row.fallback_message,
        version=row.version, updated_at=row.updated_at, updated_by=row.updated_by, expires_at=row.expires_at,
    )


def _row(session: Session, route: str, env: str, *, lock: bool = False) -> RouteControl | None:
    stmt = select(RouteControl).where(RouteControl.route == route, RouteControl.env == env)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt.execution_options(populate_existing=True)).first()


def get_controls(session: Session, route: str, env: str = DEFAULT_ENV) -> ControlState:
    """The controls in force; defaults at version 0 for a route never changed."""
    return _state(_row(session, route, env), route, env)


def list_controls(
    session: Session, env: str | None = None, routes: Iterable[str] | None = None
) -> list[ControlState]:
    """Controls of every changed route (in `env`, or every env), plus defaults for the other known routes
    (and for each of `routes` when given, which also limits the answer), ordered by route and env."""
    wanted = sorted(set(routes)) if routes is not None else None
    stmt = select(RouteControl)
    if env is not None:
        stmt = stmt.where(RouteControl.env == env)
    if wanted is not None:
        stmt = stmt.where(RouteControl.route.in_(wanted))
    states = [_state(row, row.route, row.env) for row in session.exec(stmt)]
    present = {(s.route, s.env) for s in states}
    default_env = env or DEFAULT_ENV
    names = wanted if wanted is not None else known_routes(session)
    states += [ControlState(route=name, env=default_env) for name in names
               if (name, default_env) not in present]
    return sorted(states, key=lambda s: (s.route, s.env))


def controls_fingerprint(session: Session) -> int:
    """A number that grows with every stored change to any route's controls (the sum of versions)."""
    return int(session.exec(select(func.coalesce(func.sum(RouteControl.version), 0))).one())


def control_history(
    session: Session, *, route: str | None = None, env: str | None = None, incident: int | None = None,
    limit: int = 100,
) -> list[ControlChange]:
    """Audit entries (applied, refused, conflict, expiry), newest first."""
    stmt = select(ControlChange)
    if route is not None:
        stmt = stmt.where(ControlChange.route == route)
    if env is not None:
        stmt = stmt.where(ControlChange.env == env)
    if incident is not None:
        stmt = stmt.where(ControlChange.incident == incident)
    return list(session.exec(stmt.order_by(ControlChange.id.desc()).limit(limit)))


def _mark_changed(session: Session, route: str, env: str) -> None:
    session.info.setdefault(CHANGED_KEY, set()).add((route, env))


def _audit(session: Session, *, route: str, env: str, outcome: Outcome, actor: str, reason: str,
           incident: int | None, now: datetime, version: int, before: dict[str, Any],
           after: dict[str, Any], expires_at: datetime | None = None,
           kind: ChangeKind = ChangeKind.change, actor_name: str | None = None) -> ControlChange:
    entry = ControlChange(
        route=route, env=env, kind=kind.value, fields=list(after), before=before, after=after, actor=actor,
        actor_name=(str(actor_name)[:200] or None) if actor_name else None, reason=reason, incident=incident, ts=now, version=version, outcome=outcome.value, expires_at=expires_at,
    )
    session.add(entry)
    session.flush()
    return entry


def _reason(reason: Any) -> str:
    text = "" if reason is None else str(reason).strip()
    if len(text) > MAX_REASON_CHARS:
        raise ControlError(f"reason must be at most {MAX_REASON_CHARS:,} characters")
    return text


def _incident(incident: Any) -> int | None:
    if incident is not None and (isinstance(incident, bool) or not isinstance(incident, int) or incident < 1):
        raise ControlError("incident must be a positive incident number")
    return incident


def change_controls(
    session: Session, route: str, env: str, changes: Mapping[str, Any], *, actor: str, reason: str = "",
    incident: int | None = None, expected_version: int | None = None, expires_at: datetime | None = None,
    per_field: bool = False, actor_name: str | None = None, now: datetime,
) -> ChangeResult:
    """Apply `changes` (field → value, None clears an override) as one new version.

    With `expected_version`, a compare-and-set: when the current version differs nothing is applied and the
    outcome is `conflict` (a double click or a retried request carries the old version); with `per_field`
    only changes since that version to the same fields conflict (typed commands). Values equal to the
    current ones and no expiry → `unchanged`, nothing stored. ControlError for bad input. A route that has
    sent no events is allowed; the result carries a warning.
    """
    route, env = validate_key(route, env)
    actor, reason, incident = validate_actor(actor), _reason(reason), _incident(incident)
    values = validate_changes(changes)
    expires_at = validate_expiry(expires_at, now)
    if expected_version is not None and (
        isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0
    ):
        raise ControlError("expected_version must be a whole number >= 0")
    warnings = () if is_known_route(session, route) else (
        f"route {route!r} has sent no events yet: controls are stored, but check the name",)
    for _attempt in range(3):
        result = _try_change(session, route, env, values, actor=actor, reason=reason, incident=incident,
                             expected_version=expected_version, expires_at=expires_at,
                             per_field=per_field, actor_name=actor_name, now=now)
        if result is not None:
            return replace(result, warnings=warnings)
    raise ControlError(f"could not store controls for {route} ({env}): concurrent first changes; try again")


def _try_change(session: Session, route: str, env: str, values: dict[str, Any], *, actor: str, reason: str,
                incident: int | None, expected_version: int | None, expires_at: datetime | None,
                per_field: bool, actor_name: str | None, now: datetime) -> ChangeResult | None:
    """One compare-and-set attempt; None when another transaction created the row first (retry)."""
    row = _row(session, route, env, lock=True)
    current = _state(row, route, env)
    before = {name: getattr(current, name) for name in values}
    if expected_version is not None and expected_version != current.version:
        raced = _raced(session, route, env, expected_version, values if per_field else None)
        if raced is not None or not per_field:
            entry = _audit(session, route=route, env=env, outcome=Outcome.conflict, actor=actor,
                           reason=reason, incident=incident, now=now, version=current.version,
                           before=before, after=values, expires_at=expires_at, actor_name=actor_name)
            return ChangeResult(Outcome.conflict, current, before, values, entry.id, raced=raced)
    if before == values and expires_at is None:
        return ChangeResult(Outcome.unchanged, current, before, values)
    if row is None:
        row = RouteControl(route=route, env=env, version=0, updated_at=now, updated_by=actor, **DEFAULTS)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # created meanwhile by a concurrent first change (PostgreSQL)
            if row in session:
                session.expunge(row)
            return None
    elif row.expires_at is not None and row.expires_at <= now:
        _revert_row(session, row, now)  # what ran out goes first, so it cannot outlive this change
    for name, value in values.items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at, row.updated_by = now, actor
    entry = _audit(session, route=route, env=env, outcome=Outcome.applied, actor=actor, reason=reason,
                   incident=incident, now=now, version=row.version, before=before, after=values,
                   expires_at=expires_at, actor_name=actor_name)
    row.expires_at = _walk(_history(session, route, env), now)[1]
    session.add(row)
    session.flush()
    _mark_changed(session, route, env)
    return ChangeResult(Outcome.applied, _state(row, route, env), before, values, entry.id)


def _raced(session: Session, route: str, env: str, version: int,
           fields: Mapping[str, Any] | None) -> ControlChange | None:
    """The newest applied change after `version` (touching one of `fields` when given)."""
    stmt = select(ControlChange).where(
        ControlChange.route == route, ControlChange.env == env, ControlChange.version > version,
        ControlChange.outcome == Outcome.applied.value).order_by(ControlChange.id.desc())
    return next((c for c in session.exec(stmt) if fields is None or set(c.fields) & set(fields)), None)


def record_refusal(
    session: Session, route: str, env: str, changes: Mapping[str, Any], *, actor: str, reason: str = "",
    incident: int | None = None, actor_name: str | None = None, now: datetime,
) -> ChangeResult:
    """Audit a change someone was not allowed to make (`reason` says why); nothing is applied."""
    route, env = validate_key(route, env)
    current = get_controls(session, route, env)
    after = {str(k): v if v is None or isinstance(v, (bool, int, float, str)) else repr(v)
             for k, v in dict(changes).items()}
    before = {k: getattr(current, k) for k in after if k in FIELDS}
    entry = _audit(session, route=route, env=env, outcome=Outcome.refused, actor=str(actor)[:200] or "?",
                   reason=_reason(reason), incident=_incident(incident), now=now, version=current.version,
                   before=before, after=after, actor_name=actor_name)
    return ChangeResult(Outcome.refused, current, before, after, entry.id)


def _history(session: Session, route: str, env: str) -> list[ControlChange]:
    """Applied person/script changes of a route, newest first (expiry entries are derived, not sources)."""
    stmt = select(ControlChange).where(
        ControlChange.route == route, ControlChange.env == env,
        ControlChange.outcome == Outcome.applied.value, ControlChange.kind == ChangeKind.change.value,
    ).order_by(ControlChange.id.desc())
    return list(session.exec(stmt))


def _walk(history: list[ControlChange], now: datetime
          ) -> tuple[dict[str, Any], datetime | None, list[ControlChange]]:
    """(values in force at `now`, soonest expiry among their sources, expired changes passed over)."""
    values, expiry, passed = dict(DEFAULTS), None, {}
    for name in FIELDS:
        for change in history:
            if name not in change.after:
                continue
            if change.expires_at is not None and change.expires_at <= now:
                passed[change.id] = change
                continue
            values[name] = change.after[name]
            if change.expires_at is not None and (expiry is None or change.expires_at < expiry):
                expiry = change.expires_at
            break
    return values, expiry, list(passed.values())


def _revert_row(session: Session, row: RouteControl, now: datetime) -> Reverted | None:
    """Put back what ran out on one (locked) row; one audited expiry entry and version when anything did."""
    values, next_expiry, passed = _walk(_history(session, row.route, row.env), now)
    last = session.exec(select(func.max(ControlChange.ts)).where(
        ControlChange.route == row.route, ControlChange.env == row.env,
        ControlChange.kind == ChangeKind.expiry.value)).one()
    expired = sorted((c for c in passed if last is None or c.expires_at > last), key=lambda c: c.id)
    before = {name: getattr(row, name) for name in FIELDS if getattr(row, name) != values[name]}
    after = {name: values[name] for name in before}
    row.expires_at = next_expiry
    session.add(row)
    if not expired and not before:
        session.flush()
        return None
    for name, value in after.items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at, row.updated_by = now, EXPIRY_ACTOR
    ids = tuple(c.id for c in expired)
    incident = next((c.incident for c in reversed(expired) if c.incident is not None), None)
    _audit(session, route=row.route, env=row.env, outcome=Outcome.applied, actor=EXPIRY_ACTOR,
           reason="expired: " + ", ".join(f"change {i}" for i in ids), incident=incident, now=now,
           version=row.version, before=before, after=after, kind=ChangeKind.expiry)
    _mark_changed(session, row.route, row.env)
    return Reverted(route=row.route, env=row.env, before=before, after=after, version=row.version,
                    incident=incident, expired_changes=ids, controls=_state(row, row.route, row.env))


def any_expired(session: Session, now: datetime) -> bool:
    """True when some route has a temporary change that ran out (a cheap read before reverting)."""
    stmt = select(RouteControl.route).where(RouteControl.expires_at.is_not(None),
                                            RouteControl.expires_at <= now).limit(1)
    return session.exec(stmt).first() is not None


def revert_expired(session: Session, now: datetime) -> list[Reverted]:
    """Restore what temporary changes overrode once their `expires_at` has passed; what was put back."""
    stmt = (select(RouteControl).where(RouteControl.expires_at.is_not(None), RouteControl.expires_at <= now)
            .order_by(RouteControl.route, RouteControl.env).with_for_update())
    rows = list(session.exec(stmt.execution_options(populate_existing=True)))
    return [r for row in rows if (r := _revert_row(session, row, now)) is not None]
