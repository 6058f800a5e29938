""""Did the mitigation work?": `mitigation_check_minutes` after each applied control change made
in an incident, post the route's stats since the change vs the incident window and the baseline,
and mark the incident mitigated when the stats that triggered it recovered (alerts.recovery).

Due changes are found in the control audit (a restart loses none); one slot per change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import select

from llm_incident.alerts.recovery import assess
from llm_incident.commands import reminder_views
from llm_incident.commands.replies import Post, Target
from llm_incident.controls.models import ChangeKind, ControlChange, Outcome
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import IncidentStatus
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.slots import claim_slot, unclaimed

JOB = "mitigation-check"
LOOKBACK = timedelta(days=1)  # changes older than this when first seen are not checked


def what_changed(change: ControlChange) -> str:
    """The change in a word or two: "kill switch", "clamp", "model switch", "restore"…"""
    after = change.after or {}
    if after.get("enabled") is False:
        return "kill switch"
    names = {"max_tokens": "clamp", "model": "model switch", "provider": "provider switch",
             "retry_cap": "retry cap"}
    set_now = [names[k] for k in names if after.get(k) is not None]
    if set_now:
        return " and ".join(set_now)
    return "restore"


def check_mitigations(jc: JobContext, now: datetime) -> list[int]:
    """Run the checks that are due; the ids of the changes checked."""
    due = now - timedelta(minutes=jc.mitigation_check_minutes)
    stmt = (select(ControlChange.id)
            .where(ControlChange.incident.is_not(None),
                   ControlChange.kind == ChangeKind.change.value,
                   ControlChange.outcome == Outcome.applied.value,
                   ControlChange.ts <= due, ControlChange.ts > due - LOOKBACK)
            .order_by(ControlChange.id))
    with jc.db.read() as session:
        ids = unclaimed(session, JOB, [str(i) for i in session.exec(stmt)])
    checked = []
    for slot in ids:
        change_id = int(slot)
        with jc.db.write() as session:
            if not claim_slot(session, JOB, slot, now=now):
                continue
            change = session.get(ControlChange, change_id)
            incident = incidents.get_incident(session, change.incident)
            if incident.status == IncidentStatus.closed.value:
                continue  # the slot stays claimed: nothing to say about a closed incident
            checked.append(change_id)
            recovery = assess(session, incident, incidents.timeline(session, incident),
                              route=change.route, change_ts=change.ts, now=now, rules=jc.rules)
            what = what_changed(change)
            marked = False
            if recovery.recovered:
                marked = incidents.mark_mitigated(
                    session, incident, actor=jc.actor, now=now,
                    text=f"mitigated: after the {what} on {change.route}, {recovery.reason}"
                ) is not None
            if jc.delivery is not None:
                reply = reminder_views.recovery_reply(incident, recovery, what, marked)
                jc.delivery.enqueue(session, [Post(incident.number, Target.thread, reply,
                                                   key=f"{JOB}:{change_id}")])
                if marked:
                    jc.delivery.refresh_card(session, incident)
    return checked
