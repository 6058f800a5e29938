"""Pure builders for what the scheduler posts in incidents: nudges, follow-ups, expiries, checks."""

from __future__ import annotations

from datetime import timedelta

from llm_incident.alerts.evaluate import OK
from llm_incident.alerts.recovery import Recovery
from llm_incident.commands.replies import Note, Reply, Section, Table
from llm_incident.commands.views import duration, when
from llm_incident.incidents.models import Incident
from llm_incident.metrics.compare import fmt

LEVEL_MARK = {OK: "✅ ok", "warning": "🟠 warning", "critical": "🔴 critical"}


def status_nudge(incident: Incident, quiet: timedelta, every: timedelta) -> Reply:
    text = (f"⏰ Incident #{incident.number}: no status update for {duration(quiet)} "
            f"({incident.severity}: one every {duration(every)}). Post one with "
            f"`/llm-incident status #{incident.number} <what is happening>`.")
    return Reply(text=text, blocks=(Section(text=text),), ephemeral=False)


def follow_up(incident: Incident, items: list[str], days: int) -> Reply:
    text = (f"📋 Incident #{incident.number} ({incident.symptom or 'no symptom given'}) closed "
            f"{days} days ago. Are its follow-ups done?")
    lines = "\n".join(f"• {item}" for item in items) or "• none were recorded"
    return Reply(text=text, blocks=(
        Section(title=text, text=lines),
        Note(f"the postmortem draft: `llm-incident postmortem {incident.number}`"),
    ), ephemeral=False)


def expiry_line(route: str, before: dict, after: dict, changes: tuple[int, ...]) -> str:
    """"⏱ Temporary change on `r` ran out: max_tokens 512 → default (change 12)"."""
    parts = [f"{name} {_word(before.get(name))} → {_word(after.get(name))}" for name in after]
    which = ", ".join(f"change {c}" for c in changes)
    return (f"⏱ A temporary change on `{route}` ran out and was put back: "
            f"{'; '.join(parts) or 'no field differed'}" + (f" ({which})" if which else ""))


def _word(value: object) -> str:
    if value is None:
        return "default"
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)


def recovery_reply(incident: Incident, recovery: Recovery, what: str,
                   marked: bool) -> Reply:
    """"Did the clamp work?" with since-change / incident / baseline numbers per stat."""
    at = f"{recovery.change_ts:%H:%M}"
    lead = []
    rows = []
    for check in recovery.checks:
        since, during, base = (fmt(v, check.kind) for v in (check.since, check.incident,
                                                             check.baseline))
        if check.triggering:
            lead.append(f"{check.label} {during} → {since} since the {what} at {at}; "
                        f"baseline {base}")
        mark = LEVEL_MARK.get(check.level or "", "")
        rows.append(((check.label + (" *" if check.triggering else "")), during, since, base,
                     mark))
    verdict = {True: "✅ Recovered", False: "❌ Not recovered", None: "❔ Can't tell yet"}
    outcome = f"{verdict[recovery.recovered]}: {recovery.reason}."
    if recovery.recovered is None and incident.status == "open":
        outcome += (f" If the symptom is under control, say so with "
                    f"`/llm-incident mitigated #{incident.number}`.")
    if marked:
        outcome += f" Incident #{incident.number} is now *mitigated*."
    title = (f"Did the {what} on `{recovery.route}` work? "
             f"({duration(recovery.now - recovery.change_ts)} after it, "
             f"{recovery.since_calls:,} calls)")
    return Reply(text=f"{title} {outcome}", blocks=(
        Section(title=title, text="\n".join(lead) + "\n" + outcome),
        Table(header=("stat", "incident", "since change", "baseline", "alert level"),
              rows=tuple(rows)),
        Note("* the stats that triggered the incident; baseline = "
             + (f"as long, just before the onset ({when(incident.onset_at)})"
                if incident.onset_at is not None and incident.onset_at < recovery.change_ts
                else "the same span 24 h earlier")
             + "; checked at " + when(recovery.now)),
    ), ephemeral=False)
