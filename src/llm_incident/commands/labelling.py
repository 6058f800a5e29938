"""Evidence from commands: attach, note, events, sample — and keeping sample messages current.

A sample is remembered as a timeline entry (kind `sample`, the event ids in `after`), so a label
given later — by button or by typing `attach` — updates that event's message and the sample's
progress line in place.
"""

from __future__ import annotations

from sqlmodel import Session, select

from llm_incident.commands.parse import Attach, Events, Note, Sample
from llm_incident.commands.replies import (
    Actions,
    Button,
    FieldKind,
    Modal,
    ModalField,
    Note as NoteBlock,
    Post,
    Reply,
    Section,
    Target,
)
from llm_incident.events.models import Event
from llm_incident.events.redact import redact
from llm_incident.evidence import service as evidence
from llm_incident.evidence.sampling import sample_events
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident, TimelineEntry
from llm_incident.metrics.search import search_events

EXCERPT_CHARS = 280


def event_line(event: Event) -> str:
    """One compact line about an event: id, route, model, tokens, duration, status."""
    tokens = f"{event.tokens_in if event.tokens_in is not None else '?'}→" \
             f"{event.tokens_out if event.tokens_out is not None else '?'} tok"
    took = f"{event.duration_ms:,.0f} ms" if event.duration_ms is not None else "? ms"
    status = event.status + (f" {event.error_code}" if event.error_code else "")
    if event.contains_banned:
        status += ", banned phrase"
    return (f"`{event.event_id}` · `{event.route}` · {event.model or 'model ?'} · {tokens} · "
            f"{took} · {status} · {event.ts:%H:%M:%S}")


def excerpt(event: Event) -> str:
    text = redact(event.output_excerpt or "")[:EXCERPT_CHARS]
    return f"> {text}" if text else "_no output excerpt_"


def label_buttons(number: int, event_id: str, *, with_note: bool) -> Actions:
    buttons = (Button("👍 Good", f"attach #{number} {event_id} good", style="primary"),
               Button("👎 Bad", f"attach #{number} {event_id} bad", style="danger"))
    if with_note:
        buttons += (Button("Note…", f"note #{number} {event_id}"),)
    return Actions(buttons)


def sample_message(number: int, event: Event, item: evidence.EvidenceItem | None) -> Reply:
    """One sampled event for labelling; shows its label once it has one."""
    state = "not labelled yet"
    if item is not None and item.label:
        state = f"labelled *{item.label}* by <@{item.labelled_by}>"
        if item.note:
            state += f" — {item.note}"
    return Reply(text=f"Sample event {event.event_id}",
                 blocks=(Section(text=f"{event_line(event)}\n{excerpt(event)}"),
                         label_buttons(number, event.event_id, with_note=True), NoteBlock(state)),
                 ephemeral=False)


def sample_key(number: int, event_id: str) -> str:
    return f"incident:{number}:sample-event:{event_id}"


class Labelling:
    """Evidence handlers; run inside the core's transaction and delivery."""

    def __init__(self, delivery) -> None:
        self.delivery = delivery

    def attach(self, session: Session, incident: Incident, cmd: Attach, ctx) -> Reply:
        result = evidence.attach(session, incident, cmd.event_ids, label=cmd.label,
                                 note=cmd.note or None, actor=ctx.user, now=ctx.now)
        lines = []
        if result.new_ids:
            what = f" as {cmd.label}" if cmd.label else ""
            lines.append(f"attached {', '.join(result.new_ids)}{what}"
                         + (f": {cmd.note}" if cmd.note else ""))
        lines += [u.describe() for u in result.updated if u.changed]
        if lines:
            incidents.add_timeline(session, incident, actor=ctx.user, kind="evidence",
                                   text="; ".join(lines), now=ctx.now)
            incidents.touch(session, incident, ctx.now)
            self._refresh_samples(session, incident, [i.event_id for i in result.attached])
            self.delivery.refresh_card(session, incident)
        blocks: list = [Section(text=f"{event_line_or_id(i)}\n{_label_note(i)}")
                        for i in result.attached[:20]]
        if result.unknown_ids:
            blocks.append(Section(text="⚠️ No stored event with id: "
                                       + ", ".join(f"`{i}`" for i in result.unknown_ids)
                                       + " — check the id (nothing was attached for these)."))
        attached = len(result.attached)
        text = (f"Incident #{incident.number}: {attached} event(s) attached or updated"
                + (f", {len(result.unknown_ids)} unknown" if result.unknown_ids else ""))
        return Reply(text=text, blocks=tuple(blocks))

    def note(self, session: Session, incident: Incident, cmd: Note, ctx) -> Reply | Modal:
        if cmd.form:
            return Modal(kind="note", title="Note on an event", submit="Save",
                         context=f"#{incident.number} {cmd.event_id}",
                         fields=(ModalField("note", f"Note on {cmd.event_id}", FieldKind.long_text),))
        result = evidence.set_note(session, incident, cmd.event_id, cmd.text, actor=ctx.user,
                                   now=ctx.now)
        change = result.update.describe() if result.update else f"note on {cmd.event_id}: {cmd.text}"
        incidents.add_timeline(session, incident, actor=ctx.user, kind="evidence", text=change,
                               now=ctx.now)
        self._refresh_samples(session, incident, [cmd.event_id])
        self.delivery.refresh_card(session, incident)
        return Reply(text=f"Noted on `{cmd.event_id}` (incident #{incident.number}).")

    def events(self, session: Session, cmd: Events, ctx, incident: Incident | None) -> Reply:
        found = search_events(session, filter_text=cmd.filter_text, now=ctx.now, limit=cmd.limit)
        if not found:
            return Reply(text=f"No events match `{cmd.filter_text}`.")
        blocks: list = [Section(title=f"{len(found)} newest event(s) matching "
                                      f"`{cmd.filter_text}`")]
        for event in found:
            blocks.append(Section(text=f"{event_line(event)}\n{excerpt(event)}"))
            if incident is not None:
                blocks.append(label_buttons(incident.number, event.event_id, with_note=False))
        if incident is None:
            blocks.append(NoteBlock("Start an incident (or name one with `attach #N …`) to "
                                    "attach these as evidence."))
        return Reply(text=f"{len(found)} event(s)", blocks=tuple(blocks))

    def sample(self, session: Session, incident: Incident, cmd: Sample, ctx) -> Reply:
        picked = sample_events(session, incident, route=cmd.route, n=cmd.n,
                               filter_where=cmd.filter_text, now=ctx.now)
        if not picked:
            return Reply(text=f"No unlabelled events of `{cmd.route}` in the incident window "
                              "(or the last hour) match; nothing to sample.")
        entry = incidents.add_timeline(
            session, incident, actor=ctx.user, kind="sample", now=ctx.now,
            text=f"sampled {len(picked)} events of {cmd.route}"
                 + (f" matching {cmd.filter_text}" if cmd.filter_text else ""),
            after={"route": cmd.route, "event_ids": [e.event_id for e in picked]})
        n = incident.number
        posts = [Post(n, Target.thread, self._progress(session, incident, entry),
                      key=f"incident:{n}:sample:{entry.id}")]
        posts += [Post(n, Target.thread, sample_message(n, event, None),
                       key=sample_key(n, event.event_id)) for event in picked]
        self.delivery.enqueue(session, posts)
        return Reply(text=f"Posted {len(picked)} events of `{cmd.route}` to the incident thread "
                          "for labelling.")

    def _progress(self, session: Session, incident: Incident, entry: TimelineEntry) -> Reply:
        ids = set(entry.after["event_ids"])
        items = [i for i in evidence.list_evidence(session, incident) if i.event_id in ids]
        labelled = [i for i in items if i.label]
        bad = sum(1 for i in labelled if i.label == "bad")
        text = (f"*Sample of {len(ids)} from `{entry.after['route']}`*: "
                f"{len(labelled)}/{len(ids)} labelled, {bad} bad")
        return Reply(text=text, blocks=(Section(text=text),), ephemeral=False)

    def _refresh_samples(self, session: Session, incident: Incident, event_ids: list[str]) -> None:
        """Re-render the sample messages and progress lines that show these events."""
        touched = set(event_ids)
        entries = session.exec(select(TimelineEntry).where(
            TimelineEntry.incident_id == incident.id, TimelineEntry.kind == "sample")).all()
        items = {i.event_id: i for i in evidence.list_evidence(session, incident)}
        n, posts = incident.number, []
        for entry in entries:
            hits = touched & set(entry.after["event_ids"])
            if not hits:
                continue
            posts.append(Post(n, Target.thread, self._progress(session, incident, entry),
                              key=f"incident:{n}:sample:{entry.id}", replace=True))
            events = session.exec(select(Event).where(Event.event_id.in_(sorted(hits)))).all()
            posts += [Post(n, Target.thread, sample_message(n, e, items.get(e.event_id)),
                           key=sample_key(n, e.event_id), replace=True) for e in events]
        if posts:
            self.delivery.enqueue(session, posts)


def event_line_or_id(item: evidence.EvidenceItem) -> str:
    if item.event is None:
        return f"`{item.event_id}` (event no longer stored)"
    e = item.event
    tokens = f"{e.tokens_in if e.tokens_in is not None else '?'}→{e.tokens_out if e.tokens_out is not None else '?'} tok"
    excerpt_text = redact(e.output_excerpt or "")[:EXCERPT_CHARS]
    return (f"`{item.event_id}` · `{e.route}` · {e.model or 'model ?'} · {tokens} · {e.status}"
            + (f"\n> {excerpt_text}" if excerpt_text else ""))


def _label_note(item: evidence.EvidenceItem) -> str:
    label = f"*{item.label}*" if item.label else "unlabelled"
    return label + (f" — {item.note}" if item.note else "")
