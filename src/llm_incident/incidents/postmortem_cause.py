"""What the postmortem names as the cause: the triage's attribution and likely cause, not the newest
change (a rollback recorded during the incident is a fix, not the cause).

The triage that ran at the start left its route and main stat in the timeline (`kind="triage"`);
with an onset, `triage.attribution.attribute` says which value (prompt version, model, …) holds
the excess and `triage.cause.likely_causes` ranks the change-log entries near the onset with that
agreement. Without a triage entry the changes are ranked by closeness to the start alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from llm_incident.incidents.postmortem_model import Culprit
from llm_incident.triage.attribution import attribute
from llm_incident.triage.ranking import Attribution, explaining
from llm_incident.triage.cause import likely_causes

LOOKBACK = timedelta(hours=6)  # the triage's (commands.triage_posts.LOOKBACK)


def triage_facts(entries: list[Any]) -> dict[str, Any]:
    """The structured part of the newest triage entry ({} when none recorded it)."""
    for e in reversed(entries):
        if e.kind == "triage" and isinstance(getattr(e, "after", None), dict):
            return dict(e.after)
    return {}


def _attributions(session: Session, route: str, stat: str | None, onset: datetime,
                  end: datetime) -> list[Attribution]:
    if not stat or end <= onset:
        return []
    try:
        return explaining(attribute(session, route, stat=stat, onset=onset, now=end,
                                    lookback=LOOKBACK))
    except ValueError:  # a stat attribution does not know
        return []


def find_culprit(session: Session, routes: list[str], facts: dict[str, Any], *,
                 onset: datetime, has_onset: bool, end: datetime) -> Culprit | None:
    """The attributed cause of the incident (see the module docstring); None when neither the
    attribution nor the change log names anything."""
    route = facts.get("route") if facts.get("route") in routes else (routes[0] if routes else None)
    if route is None:
        return None
    ordered = [route, *(r for r in routes if r != route)]
    attributions = _attributions(session, route, facts.get("main_stat"), onset,
                                 end) if has_onset else []
    causes = likely_causes(session, ordered, onset=onset, attributions=attributions)
    top = causes[0] if causes else None
    agreed = next((a for a in attributions if top is not None and top.agrees_with == a.label),
                  attributions[0] if attributions else None)
    if top is None and agreed is None:
        return None
    dimension = agreed.dimension if agreed else None
    return Culprit(
        route=top.route if top else route, kind=top.kind if top else "",
        ref=top.ref if top else None, description=top.description if top else "",
        ts=top.ts if top else None, dimension=dimension,
        value=agreed.value if agreed else None,
        prompt_id=agreed.prompt_id if agreed and dimension == "prompt_version" else None)
