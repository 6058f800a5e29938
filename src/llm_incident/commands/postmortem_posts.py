"""What a close posts in the thread, from the compiled postmortem (no Slack types).

- `summary_reply(pm)`: summary, window, time to mitigate, a before/during/after table of the key
  stats per route, evidence counts, follow-ups — short enough for one chat message;
- `still_active_reply(pm, versions)`: the mitigations still on, with a Restore button per route;
- `closed_reply(pm, entries)`: "closed after …" and the timeline, in the postmortem's format;
- `close_posts(session, incident, now)`: the three posts (summary, still active, files).

Durations are `postmortem_phrases.span` everywhere.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from llm_incident.commands.links import NO_LINKS, DashboardLinks, link
from llm_incident.commands.parse import AFTER_CLOSE
from llm_incident.commands.replies import (
    Actions,
    Attachment,
    Button,
    Confirm,
    Note,
    Post,
    Reply,
    Section,
    Table,
    Target,
)
from llm_incident.controls.service import get_controls
from llm_incident.incidents.models import Incident, TimelineEntry
from llm_incident.incidents.postmortem_markdown import extra_spend
from llm_incident.incidents.postmortem import Postmortem, charted_routes, compile_postmortem
from llm_incident.incidents.postmortem_markdown import delta_text
from llm_incident.incidents.postmortem_phrases import action_text, due_at, span, when
from llm_incident.metrics.compare import COMPARED, fmt

KEY_STATS = ("calls", "flagged_rate", "p95_duration_ms", "p95_tokens_out", "cost_per_call_usd")
MAX_FOLLOW_UPS = 8
MAX_MITIGATIONS = 8
MAX_ROUTE_TABLES = 10  # the rest are in the file (a message holds at most 50 blocks)
RESTORE_ENV = "prod"  # the env `restore` acts on (commands.mitigations.ENV)


def summary_reply(pm: Postmortem, links: DashboardLinks = NO_LINKS) -> Reply:
    """The postmortem at a glance (the full draft goes out as a file), linked to the incident's
    dashboard page when there is a dashboard."""
    head = f"Postmortem draft — incident #{pm.number}"
    ttm = span(pm.time_to_mitigate) if pm.time_to_mitigate is not None else "not mitigated"
    closed = when(pm.closed_at) if pm.closed_at else f"open (as of {when(pm.as_of)})"
    fields = (
        ("Window", f"{when(pm.began_at)} → {closed}"),
        *((("Detection lag", f"{span(pm.detection_lag)} (declared {when(pm.started_at)})"),)
          if pm.detection_lag is not None else ()),
        ("Duration", span(pm.duration)),
        ("Time to mitigate", ttm + (" from the onset" if pm.detection_lag is not None
                                    and pm.time_to_mitigate is not None else "")),
        ("Routes", ", ".join(f"`{r}`" for r in pm.routes) or "none named"),
        *((("Extra spend", spend),) if (spend := extra_spend(pm)) else ()),
    )
    summary = pm.summary or "_No closing summary given._"
    blocks: list = [Section(title=head, text=f"{pm.symptom}\n*Summary:* {summary}",
                            fields=fields)]
    for metrics in pm.metrics[:MAX_ROUTE_TABLES]:
        rows = []
        for stat in KEY_STATS:
            label, kind = COMPARED[stat]
            b, d, a = (getattr(metrics.phase(p), stat) if metrics.phase(p) else None
                       for p in ("baseline", "during", "after"))
            rows.append((label, fmt(b, kind), fmt(d, kind), delta_text(stat, d, b),
                         fmt(a, kind), delta_text(stat, a, b)))
        blocks.append(Table(("metric", "before", "during", "Δ", "after", "Δ"), tuple(rows),
                            title=f"{metrics.route}: before / during / after"))
    if len(pm.metrics) > MAX_ROUTE_TABLES:
        blocks.append(Note(f"… and {len(pm.metrics) - MAX_ROUTE_TABLES} more route(s): see the "
                           "Markdown file."))
    if pm.mitigations:
        lines = [f"• `{due_at(d, pm.decisions):%H:%M}` {action_text(d)}"
                 for d in pm.mitigations[:MAX_MITIGATIONS]]
        if len(pm.mitigations) > MAX_MITIGATIONS:
            lines.append(f"… and {len(pm.mitigations) - MAX_MITIGATIONS} more in the file")
        blocks.append(Section(title="Mitigations", text="\n".join(lines)))
    c = pm.evidence_counts
    blocks.append(Section(title="Evidence", text=(
        f"{c.attached} event(s) attached: {c.bad} bad, {c.good} good, {c.unlabelled} unlabelled")))
    follow = [f"• {f}" for f in pm.follow_ups[:MAX_FOLLOW_UPS]]
    follow += [f"• {f} _(for humans)_" for f in pm.human_follow_ups]
    blocks.append(Section(title="Follow-ups", text="\n".join(follow) or "None derived."))
    blocks.append(Note("Full draft: the Markdown file and a chart per route follow in this "
                       f"thread; `llm-incident postmortem {pm.number}` prints it."))
    if (url := links.incident(pm.number)) is not None:
        blocks.append(Note(f"📊 {link(url, 'The postmortem in the dashboard (rendered, charts inline)')}"))
    return Reply(text=head, blocks=tuple(blocks), ephemeral=False)


def still_active_reply(pm: Postmortem, versions: dict[str, int]) -> Reply | None:
    """Mitigations still on after the close, a Restore button (guarded by the control version in
    `versions`) per prod route; None when every route is back to its defaults."""
    if not pm.still_active:
        return None
    lines, buttons = [], []
    for a in pm.still_active:
        where = "" if a.env == RESTORE_ENV else f" ({a.env})"
        lines.append(f"• `{a.route}`{where}: {a.description}")
        if a.env == RESTORE_ENV and a.route in versions:
            buttons.append(Button(
                f"Restore {a.route}", f"restore {a.route} @v{versions[a.route]} {AFTER_CLOSE}", style="primary",
                confirm=Confirm("Restore this route?",
                                f"Clear every mitigation on {a.route} and send its traffic to "
                                "the LLM as before?", ok="Restore")))
    text = f"Incident #{pm.number} is closed but mitigations are still active"
    blocks: list = [Section(title=text, text="\n".join(lines) + "\nRestore them when the fix "
                            "is out, or keep them on purpose (and say so in the postmortem).")]
    if buttons:
        blocks.append(Actions(tuple(buttons)))
    return Reply(text=text, blocks=tuple(blocks), ephemeral=False)


def closed_reply(pm: Postmortem, entries: list[TimelineEntry]) -> Reply:
    """`Incident #N closed after 12m 5s (declared … → …)`, the summary and the timeline: the
    time since the declaration, in the postmortem's format (its Duration counts from the onset,
    the detection lag apart)."""
    end = pm.closed_at or pm.as_of
    head = (f"Incident #{pm.number} closed after {span(end - pm.started_at)} "
            f"({when(pm.started_at)} → {when(end)})")
    if pm.detection_lag:
        head += f"; it began {span(pm.detection_lag)} before it was declared"
    lines = [f"`{e.ts:%H:%M}` <@{e.actor}> {e.kind}: {e.text}" for e in entries]
    return Reply(text=head, blocks=(Section(title=head, text=pm.summary or ""),
                                    Section(title="Timeline", text="\n".join(lines))),
                 ephemeral=False)


def close_posts(session: Session, incident: Incident, *, now: datetime,
                again: str = "", pm: Postmortem | None = None,
                links: DashboardLinks = NO_LINKS) -> list[Post]:
    """The posts a close enqueues (with the close, in its transaction), from `pm` (the frozen
    postmortem; compiled when not given); `again` tells the keys of a later close (after a
    reopen) from the first one's."""
    pm = pm or compile_postmortem(session, incident, now=now)
    n = incident.number
    posts = [Post(n, Target.thread, summary_reply(pm, links),
                  key=f"incident:{n}:postmortem{again}")]
    versions = {a.route: get_controls(session, a.route, RESTORE_ENV).version
                for a in pm.still_active if a.env == RESTORE_ENV}
    active = still_active_reply(pm, versions)
    if active is not None:
        posts.append(Post(n, Target.thread, active, key=f"incident:{n}:still-active{again}"))
    charted = len(charted_routes(pm))
    which = ("a chart per impacted route" if charted == len(pm.routes) else
             f"charts for {charted} of the {len(pm.routes)} impacted routes (the incident's "
             f"own first; `llm-incident postmortem {n} --charts DIR` draws them all)")
    files = Reply(text=f"Postmortem draft for incident #{n}: the full Markdown and {which}",
                  ephemeral=False)
    posts.append(Post(n, Target.thread, files, key=f"incident:{n}:postmortem-files{again}",
                      attachments=(
                          Attachment(f"postmortem-incident-{n}.md",
                                     f"Postmortem draft — incident #{n}", "postmortem_markdown"),
                          Attachment(f"incident-{n}-{{route}}.png",
                                     f"Incident #{n}: {{route}}", "postmortem_charts"),
                          Attachment(f"postmortem-incident-{n}",
                                     f"Postmortem — incident #{n}", "postmortem_canvas"))))
    return posts
