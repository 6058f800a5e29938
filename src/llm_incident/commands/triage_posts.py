"""The incident's triage in its thread (no Slack types): what `llm_incident.triage` found per
route — onset, blast radius, attribution, likely cause, suggested mitigations one button away —
and the runbook's answers from it.

The start records the incident's onset (the earliest detected onset among its routes, or the
one given with `since`) and posts the Triage message right after the runbook; the scheduler
redraws both in place each minute for the first hour (`scheduler/triage_refresh.py`), so the
"now" numbers stay current while the onset stays put.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlmodel import Session

from llm_incident.commands import views
from llm_incident.commands.replies import Actions, Button, Confirm, Note, Post, Reply, Section, Target
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident
from llm_incident.metrics.windows import Window
from llm_incident.triage.blast import comparison_windows
from llm_incident.triage.report import Triage, triage
from llm_incident.triage.suggest import Suggestion

log = logging.getLogger(__name__)
MAX_TRIAGED_ROUTES = 5
LOOKBACK = timedelta(hours=6)
REFRESH_FOR = timedelta(hours=1)  # how long after the start the Triage message is redrawn
MAX_BUTTONS = 5
SINCE, DETECTED, ALERT = "since", "detected", "alert"  # where an incident's onset came from
ONSET_WORDS = {SINCE: "given with `since`", ALERT: "the alert's onset", DETECTED: "detected"}


def route_triages(session: Session, routes: list[str] | tuple[str, ...], *, incident_class: str,
                  since: datetime | None, now: datetime, source: str = SINCE) -> list[Triage]:
    """A triage per route (the first few); an onset given (`since`, or the alert's: `source`)
    holds for each. A route whose triage fails is logged and left out: the incident starts
    regardless."""
    found = []
    for route in list(routes)[:MAX_TRIAGED_ROUTES]:
        try:
            result = triage(session, route, now=now, incident_class=incident_class,
                            since=since, lookback=LOOKBACK)
        except Exception:  # noqa: BLE001 - statistics must never stop an incident's start
            log.exception("triage of %s failed; the incident goes on without it", route)
            continue
        if since is not None and result.onset is not None:
            result.onset_source = source
        found.append(result)
    return found


def incident_triages(session: Session, incident: Incident, now: datetime) -> list[Triage]:
    given = incident.onset_source in (SINCE, ALERT)
    return route_triages(session, incident.routes, incident_class=incident.incident_class,
                         since=incident.onset_at if given else None, now=now,
                         source=incident.onset_source if given else SINCE)


def primary(triages: list[Triage]) -> Triage | None:
    """The route that moved first (its answers fill the runbook)."""
    found = [t for t in triages if t.onset is not None]
    return min(found, key=lambda t: t.onset) if found else None


def record_onset(session: Session, incident: Incident, triages: list[Triage], *,
                 since: datetime | None, actor: str, now: datetime, source: str = SINCE) -> None:
    """Keep the onset on the incident — given (`since`, or the alert's onset: `source`), else
    the earliest detected one — and say so in the timeline."""
    first = primary(triages)
    if since is not None:
        incident.onset_at, incident.onset_source = _utc(since), source
    elif first is not None:
        incident.onset_at, incident.onset_source = _utc(first.onset), DETECTED
    if incident.onset_at is not None:
        incidents.touch(session, incident, now)
    if first is None:
        text = f"no onset found: {triages[0].no_shift}" if triages else "no route to triage"
        incidents.add_timeline(session, incident, actor=actor, kind="triage", now=now, text=text)
        return
    how = ONSET_WORDS.get(first.onset_source or "", first.onset_source)
    text = f"began {first.onset:%H:%M} UTC ({how}) on `{first.route}`"
    if first.main_stat:
        text += f"; {first.main_stat} moved"
    if first.attributions:
        text += f"; {first.attribution_text()}"
    if first.causes:
        text += f"; likely cause: {first.recent_change()}"
    incidents.add_timeline(session, incident, actor=actor, kind="triage", now=now, text=text,
                           after={"onset": first.onset.isoformat(), "source": first.onset_source,
                                  "route": first.route, "main_stat": first.main_stat,
                                  "attribution": first.attribution_text(),
                                  "cause": first.recent_change()})


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc) if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def onset_windows(incident: Incident, now: datetime) -> tuple[Window, Window] | None:
    """(baseline, now) anchored at the incident's onset: now = onset → now, baseline = as long,
    just before the onset (the triage's own windows); None without an onset."""
    if incident.onset_at is None:
        return None
    return comparison_windows(incident.onset_at, now, LOOKBACK)


def runbook_answers(triages: list[Triage]) -> dict[str, str]:
    """The runbook's blanks answered from the route that moved first (all say "no shift" else)."""
    first = primary(triages) or (triages[0] if triages else None)
    return first.runbook_fields() if first is not None else {}


def triage_reply(number: int, triages: list[Triage], now: datetime) -> Reply:
    """The Triage message: per route its findings, then a button per suggested mitigation."""
    blocks: list = []
    buttons: list[Button] = []
    for t in triages:
        blocks.append(Section(text="\n".join(t.lines())))
        for s in t.suggestions:
            if s.command and len(buttons) < MAX_BUTTONS:
                buttons.append(_button(s))
    if buttons:
        blocks.append(Actions(tuple(buttons)))
    blocks.append(Note(f"Statistics, no LLM: shifts confirmed by a rank test over the last "
                       f"{int(LOOKBACK.total_seconds() // 3600)} h · updated {views.when(now)}"))
    return Reply(text=f"Triage for incident #{number}" if number else "Triage",
                 blocks=tuple(blocks), ephemeral=False)


LABELS = {"clamp": "Clamp {route} to {value}", "model": "Switch {route} to {value}",
          "provider": "Switch {route} to {value}", "retries": "Cap {route} retries at {value}",
          "kill": "Kill {route}"}


def _button(s: Suggestion) -> Button:
    """A suggestion as a button running its command (a kill asks first)."""
    label = LABELS.get(s.verb or "", "{route}").format(route=s.route, value=s.value)[:75]
    command = (s.command or "").removeprefix("/llm-incident").strip()
    if s.verb == "kill":
        return Button(label, command, style="danger",
                      confirm=Confirm("Kill route?", f"Kill `{s.route}`? It answers its "
                                      "fallback message until restored.", ok="Kill it"))
    return Button(label, command)


def triage_posts(number: int, incident: Incident, triages: list[Triage], now: datetime, *,
                 replace: bool = False) -> list[Post]:
    """The runbook (answered) and the Triage message, keyed so a redraw edits them in place."""
    posts = [Post(number, Target.thread, views.runbook_reply(incident, runbook_answers(triages)),
                  key=f"incident:{number}:runbook", replace=replace)]
    if triages:
        posts.append(Post(number, Target.thread, triage_reply(number, triages, now),
                          key=f"incident:{number}:triage", replace=replace))
    return posts

