"""Pure builders: domain values → reply models (summary card, runbook, checklist, metrics…).

User and channel references use `<@U123>` / `<#C123>` markup; the console renders them as text.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from llm_incident.changes import Change
from llm_incident.commands.verbs import VERBS
from llm_incident.commands.replies import Actions, Button, Confirm, Note, Reply, Section, Table
from llm_incident.commands.links import link
from llm_incident.incidents import postmortem_phrases as phrases
from llm_incident.incidents.models import Incident, IncidentClass, TimelineEntry
from llm_incident.incidents.runbook import (
    FIRST_TEN_MINUTES,
    RUNBOOK_TITLE,
    checklists_for,
    runbook,
)
from llm_incident.metrics.compare import Comparison, Delta, fmt, label_kind, moved

CARD_STATS = ("calls", "flagged_rate", "p95_duration_ms", "p95_tokens_out", "cost_per_call_usd")
# Shown after `calls` for the provider class, and for any class when they moved.
HEADLINE_STATS = ("error_rate", "retry_share")
STATUS_ICON = {"open": "🔴", "mitigated": "🟡", "closed": "🟢"}


def when(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def duration(span: timedelta) -> str:
    """The postmortem's one duration format (`45s`, `12m 5s`, `1h 5m`), so a card's "closed
    after" and the postmortem's "Duration" read alike."""
    return phrases.span(span)


def user(user_id: str) -> str:
    return f"<@{user_id}>"


def began_text(incident: Incident) -> str | None:
    """"19:37 UTC (27m before it was declared)", or None without an onset."""
    if incident.onset_at is None:
        return None
    onset = incident.onset_at.replace(tzinfo=None)
    lag = incident.started_at.replace(tzinfo=None) - onset
    how = {"since": " (given)", "alert": " (the alert's onset)"}.get(incident.onset_source or "", "")
    if lag <= timedelta(0):
        return f"{when(onset)}{how}"
    return f"{when(onset)}{how}, {duration(lag)} before it was declared"


def title(incident: Incident) -> str:
    return f"Incident #{incident.number} — {incident.symptom or 'no symptom given'}"


def summary_card(incident: Incident, *, mitigations: list[str] | None = None,
                 evidence: str | None = None, now: datetime | None = None,
                 dashboard: str | None = None) -> Reply:
    """The live card at the top of the incident thread; `dashboard`: the incident's page."""
    icon = STATUS_ICON.get(incident.status, "")
    fields = (
        ("Status", f"{icon} {incident.status}"),
        ("Class", incident.incident_class),
        ("Severity", incident.severity),
        ("Commander", user(incident.commander)),
        ("Routes", ", ".join(f"`{r}`" for r in incident.routes) or "not named yet"),
        ("Started", when(incident.started_at)),
        *((("Began", began),) if (began := began_text(incident)) else ()),
        ("Mitigations", "; ".join(mitigations or []) or "none"),
        ("Evidence", evidence or "none attached"),
    )
    if incident.closed_at:
        fields += (("Closed", f"{when(incident.closed_at)} "
                              f"(after {duration(incident.closed_at - incident.started_at)})"),)
    blocks: list = [Section(title=title(incident), text="", fields=fields)]
    if incident.status != "closed":
        blocks.append(Actions((
            Button("Close incident", f"close #{incident.number}", style="danger",
                   confirm=Confirm("Close incident?", f"Close incident #{incident.number}?",
                                   ok="Close it")),
        )))
    footer = [f"📊 {link(dashboard, 'Dashboard: timeline, evidence, charts')}"] if dashboard else []
    if now is not None:
        footer.append(f"updated {when(now)}")
    if footer:
        blocks.append(Note(" · ".join(footer)))
    return Reply(text=f"{icon} {title(incident)} [{incident.status}]", blocks=tuple(blocks),
                 ephemeral=False)


def runbook_reply(incident: Incident, answers: dict[str, str] | None = None) -> Reply:
    """The runbook, its blanks answered by the triage where it could (`answers`)."""
    blocks = tuple(
        Section(title=s.heading, text="\n".join(f"• {line}" for line in s.lines))
        for s in runbook(incident, answers=answers)
    )
    return Reply(text=f"{RUNBOOK_TITLE} for incident #{incident.number}",
                 blocks=(Section(title=RUNBOOK_TITLE),) + blocks, ephemeral=False)


def checklist_reply(incident: Incident) -> Reply:
    lists = checklists_for(incident.incident_class)
    blocks = [Section(title="First 10 minutes", text="\n".join(f"☐ {s}" for s in FIRST_TEN_MINUTES))]
    blocks += [Section(title=f"Triage: {name}", text="\n".join(f"☐ {s}" for s in steps))
               for name, steps in lists]
    names = ", ".join(name for name, _ in lists)
    return Reply(text=f"Triage checklist ({names})", blocks=tuple(blocks), ephemeral=False)


def comparison_table(comparison: Comparison, stats: tuple[str, ...] = CARD_STATS, *,
                     incident_class: str | None = None) -> Table:
    """Baseline vs now of `stats`; after `calls`, error rate, the biggest error codes and retry
    share — always for the provider class, else those that moved."""
    rows = [_delta_row(comparison.deltas[stat]) for stat in stats]
    at = stats.index("calls") + 1 if "calls" in stats else 0
    rows[at:at] = _headline_rows(comparison, always=incident_class == IncidentClass.provider)
    return Table(header=("stat", "baseline", "now", "change"), rows=tuple(rows))


def _headline_rows(comparison: Comparison, *, always: bool) -> list[tuple[str, ...]]:
    error_rate, retry_share = (comparison.deltas[stat] for stat in HEADLINE_STATS)
    rows = [_delta_row(error_rate)] if always or moved(error_rate) else []
    for code, d in comparison.code_deltas().items():
        if always or moved(d):
            counts = (comparison.baseline_stats.error_codes.get(code, 0),
                      comparison.now.error_codes.get(code, 0))
            rows.append(_delta_row(d, counts))
    if always or moved(retry_share):
        rows.append(_delta_row(retry_share))
    return rows


def _delta_row(d: Delta, counts: tuple[int, int] | None = None) -> tuple[str, ...]:
    """label, baseline, now, change: points for rates, else the relative change ("new" from 0);
    `counts` (baseline, now) go before a rate's value: "26 (22.0%)"."""
    label, kind = label_kind(d.stat)
    base, now = fmt(d.baseline, kind), fmt(d.now, kind)
    if counts is not None:
        base, now = f"{counts[0]:,} ({base})", f"{counts[1]:,} ({now})"
    if d.abs is None:
        change = ""
    elif kind == "rate":
        points = round(d.abs * 100, 1)
        change = f"{points:+.1f} pts" if points else "±0.0 pts"
    elif d.rel is None:
        change = "new" if d.abs else ""
    else:
        change = f"{d.rel * 100:+.0f}%"
    return (label, base, now, change)


def metrics_reply(comparison: Comparison, *, hints: list[str] | None = None,
                  onset: datetime | None = None,
                  ephemeral: bool = False, incident_class: str | None = None) -> Reply:
    """Baseline-vs-now table for a route, with the verdicts worth reading first; the incident's
    class picks the rows always shown (`comparison_table`)."""
    w, b = comparison.window, comparison.baseline
    head = (f"`{comparison.route}` — last {_span(w.span)} vs {b.kind} "
            f"({b.window.start:%H:%M}–{b.window.end:%H:%M} UTC)")
    if onset is not None:
        head = (f"`{comparison.route}` — since the onset ({w.start:%H:%M} UTC, "
                f"{duration(w.span)}) vs as long before it "
                f"({b.window.start:%H:%M}–{b.window.end:%H:%M} UTC)")
    blocks: list = [Section(title=head, text="")]
    if comparison.now.calls == 0 and comparison.baseline_stats.calls == 0:
        blocks.append(Section(text="No traffic in the window or the baseline."))
    else:
        blocks.append(comparison_table(comparison, incident_class=incident_class))
        verdicts = [v for v in _verdicts(comparison)]
        if verdicts:
            blocks.append(Section(text="\n".join(f"• {v}" for v in verdicts)))
    if comparison.now.unpriced_calls:
        blocks.append(Note(f"{comparison.now.unpriced_calls} call(s) in the window have no price "
                           "(unknown model); cost per call counts priced calls only"))
    if hints:
        blocks.append(Section(title="Breakdown", text="\n".join(f"• {h}" for h in hints)))
    return Reply(text=f"Metrics for {comparison.route}", blocks=tuple(blocks), ephemeral=ephemeral)


def _verdicts(comparison: Comparison) -> list[str]:
    from llm_incident.metrics.compare import summary

    return summary(comparison)


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def changes_reply(routes: list[str], changes: list[Change], *, hours: int = 24) -> Reply:
    if not changes:
        text = f"No deploys, prompt or model changes recorded for these routes in the last {hours} h."
        return Reply(text="Recent changes: none", blocks=(Section(title="Recent changes", text=text),),
                     ephemeral=False)
    rows = tuple((f"{c.ts:%m-%d %H:%M}", c.route, c.kind, c.description[:120], c.ref or "")
                 for c in changes)
    return Reply(text=f"Recent changes: {len(changes)}",
                 blocks=(Table(("when (UTC)", "route", "kind", "what", "ref"), rows,
                               title=f"Recent changes (last {hours} h)"),),
                 ephemeral=False)


def timeline_reply(incident: Incident, entries: list[TimelineEntry]) -> Reply:
    end = incident.closed_at or entries[-1].ts
    lines = [f"`{e.ts:%H:%M}` {user(e.actor)} {e.kind}: {e.text}" for e in entries]
    head = (f"Incident #{incident.number} closed after {duration(end - incident.started_at)} "
            f"({when(incident.started_at)} → {when(end)})")
    blocks: list = [Section(title=head, text=incident.summary or "")]
    blocks.append(Section(title="Timeline", text="\n".join(lines)))
    return Reply(text=head, blocks=tuple(blocks), ephemeral=False)


def status_reply(entry: TimelineEntry) -> Reply:
    return Reply(text=f"Status update: {entry.text}",
                 blocks=(Section(text=f"*Status update* from {user(entry.actor)}\n{entry.text}"),),
                 ephemeral=False)


def list_reply(incidents: list[Incident], now: datetime) -> Reply:
    if not incidents:
        return Reply(text="No open incidents.", blocks=(Section(text="No open incidents. 🎉"),))
    rows = tuple((f"#{i.number}", i.status, i.incident_class, i.severity,
                  ", ".join(i.routes) or "-", duration(now - i.started_at), i.symptom[:60])
                 for i in incidents)
    return Reply(text=f"{len(incidents)} open incident(s)",
                 blocks=(Table(("#", "status", "class", "sev", "routes", "age", "symptom"), rows,
                               title="Open incidents"),))


def help_reply() -> Reply:
    lines = [f"`/llm-incident {usage}` — {what}" for usage, what in VERBS.values()]
    notes = ("An incident is the newest open one in the channel unless `#N` names it. "
             "Windows: 30m, 1h, 24h, 7d.")
    return Reply(text="llm-incident commands",
                 blocks=(Section(title="llm-incident commands", text="\n".join(lines)), Note(notes)))


def error_reply(message: str, usage: str | None = None) -> Reply:
    text = f"⚠️ {message}" + (f"\nUsage: `{usage}`" if usage else "")
    return Reply(text=f"⚠️ {message}", blocks=(Section(text=text),))
