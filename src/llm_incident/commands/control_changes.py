"""Changing route controls from a command, a button or a form: who may, and what it raced with.

Every change is a compare-and-set: buttons and forms carry the version they were drawn from
(`@vN`); a typed command carries the version read when it arrived, and conflicts only with a
change to the same fields since then. A closed incident's buttons change nothing, except the
postmortem's Restore buttons (`after-close`), which act outside any incident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from llm_incident.commands import mitigations, views
from llm_incident.commands.parse import ChangeControl
from llm_incident.commands.replies import Outcome, Reply, Section
from llm_incident.controls import proof
from llm_incident.controls import service as controls
from llm_incident.controls.models import ChangeKind, ControlChange
from llm_incident.controls.models import Outcome as ChangeOutcome
from llm_incident.controls.values import DEFAULTS
from llm_incident.db import Database
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident, IncidentStatus

log = logging.getLogger(__name__)

NOT_A_RESPONDER = ("only responders (LLM_INCIDENT_RESPONDERS) may {what}; "
                   "ask the incident commander or a responder to do it")
Record = Callable[[Session, Incident, ChangeControl, controls.ChangeResult, str], None]


def refusal(what: str) -> Outcome:
    """The answer to someone who is not a responder."""
    return Outcome(reply=views.error_reply(NOT_A_RESPONDER.format(what=what)))


def typed_usage(cmd: ChangeControl) -> str:
    value = {"clamp": " <max_tokens>", "model": " <model>", "provider": " <provider>",
             "retries": " <cap>"}.get(cmd.verb, "")
    return f"/llm-incident {cmd.verb} {cmd.route}{value}"


def raced_line(change: ControlChange, route: str, now: datetime) -> str:
    """"<@ana> killed `support.reply` 0.2 s earlier": the change a typed command lost to."""
    after = change.after or {}
    if change.kind == ChangeKind.expiry.value:
        what = f"an expiry reverted {', '.join(after)} on"
    elif after == {"enabled": False}:
        what = "killed"
    elif after == DEFAULTS:
        what = "restored"
    else:
        what = "set " + ", ".join(f"{k} to {v}" for k, v in after.items()) + " on"
    seconds = (now - change.ts).total_seconds()
    when = (f"{max(seconds, 0):.1f} s earlier" if seconds < 60
            else f"at {change.ts:%H:%M:%S} UTC")
    return f"<@{change.actor}> {what} `{route}` {when}"


class ControlChanges:
    """The `kill`/`restore`/`clamp`/`model`/`provider`/`retries` handler of the command core."""

    def __init__(self, db: Database, can_change: mitigations.Permission | None,
                 record: Record) -> None:
        self.db = db
        self.can_change = can_change  # None: anyone may change controls
        self.record = record  # timeline entry, thread line, panel and card of an incident

    def run(self, cmd: ChangeControl, ctx) -> Outcome:
        changes = mitigations.requested_changes(cmd)
        typed = cmd.expected_version is None
        with self.db.read() as session:  # what the typed command saw: its compare-and-set guard
            seen = controls.get_controls(session, cmd.route, mitigations.ENV).version
        with self.db.write() as session:
            thread = _thread_incident(session, ctx)
            closed = thread is not None and thread.status == IncidentStatus.closed.value
            pressed = not typed or ctx.via == "button"  # a Triage suggestion carries no @vN
            if closed and pressed and not cmd.after_close:
                return Outcome(reply=views.error_reply(
                    f"incident #{thread.number} is closed; use `{typed_usage(cmd)}` to act now "
                    "(nothing was changed)"))
            incident = None if closed or cmd.after_close else thread or _open_here(session, ctx)
            number = incident.number if incident else None
            if self.can_change is not None and not self.can_change(ctx.user):
                controls.record_refusal(session, cmd.route, mitigations.ENV, changes,
                                        actor=ctx.user, reason="not a responder",
                                        incident=number, actor_name=ctx.user_name, now=ctx.now)
                log.info("refused %s %s from %s: not a responder", cmd.verb, cmd.route, ctx.user)
                return refusal("change route controls")
            state = controls.get_controls(session, cmd.route, mitigations.ENV)
            if cmd.form:
                return Outcome(modal=mitigations.control_form(cmd, state, session, ctx.now))
            result = controls.change_controls(
                session, cmd.route, mitigations.ENV, changes, actor=ctx.user,
                reason=f"/llm-incident {cmd.verb} {cmd.route}", incident=number,
                expected_version=seen if typed else cmd.expected_version, per_field=typed,
                expires_at=mitigations.expiry(cmd, ctx.now), actor_name=ctx.user_name,
                now=ctx.now)
            if result.outcome is ChangeOutcome.conflict:
                return Outcome(reply=_conflict(cmd, result, typed, ctx.now))
            if result.outcome is ChangeOutcome.unchanged:
                return Outcome(reply=Reply(text=f"Nothing to do: `{cmd.route}` already has that."))
            line = mitigations.describe_change(ctx.user, cmd, result)
            if incident is not None:
                self.record(session, incident, cmd, result, line)
                proof.follow(session, incident=incident.number, change_id=result.change_id,
                             route=cmd.route, env=mitigations.ENV, version=result.controls.version,
                             after=result.after, line=line, changed_at=result.controls.updated_at)
        warnings = "".join(f"\n⚠️ {w}" for w in result.warnings)
        outside = ""
        if closed or cmd.after_close:
            which = f"incident #{thread.number} is closed" if closed else "from a closed incident"
            outside = (f"\nThis is a change outside an incident ({which}): it is in the route's "
                       "control history, not in an incident timeline.")
        return Outcome(reply=Reply(text=f"Done: {line}{warnings}{outside}",
                                   ephemeral=incident is not None or closed or cmd.after_close))


def _conflict(cmd: ChangeControl, result: controls.ChangeResult, typed: bool,
              now: datetime) -> Reply:
    """What the change lost to and that nothing was done, then the current panel (the text is
    a block too: Slack shows only the blocks of a message that has them)."""
    if typed and result.raced is not None:
        text = f"Not applied: {raced_line(result.raced, cmd.route, now)}; nothing changed."
    else:
        since = f": {raced_line(result.raced, cmd.route, now)}" if result.raced is not None else ""
        text = (f"Not applied: `{cmd.route}` changed since that button was shown (now version "
                f"{result.controls.version}){since}; nothing changed.")
    text += " Current controls:"
    blocks = (Section(text=text), *mitigations.panel(result.controls).blocks)
    return Reply(text=text, blocks=blocks)


def _thread_incident(session: Session, ctx) -> Incident | None:
    """The incident (open or closed) whose thread the request came from."""
    if not ctx.thread_ts:
        return None
    try:
        found = incidents.find_incident(session, channel_id=ctx.channel, thread_ts=ctx.thread_ts)
    except incidents.IncidentError:
        return None
    return found if found.thread_ts == ctx.thread_ts else None


def _open_here(session: Session, ctx) -> Incident | None:
    """The newest open incident of the channel, if any (controls work without one)."""
    try:
        return incidents.find_incident(session, channel_id=ctx.channel)
    except incidents.IncidentError:
        return None
