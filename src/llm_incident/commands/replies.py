"""The reply model: what a command answers and what it wants posted, free of any Slack types.

Renderers (`slack/blocks.py`, `console/render.py`) are pure functions of these values.
Text uses a small markdown subset both can show: *bold*, _italic_, `code`, bullets "• ".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Confirm:
    """A confirmation step before a button acts (Slack's native confirm dialog)."""

    title: str
    text: str
    ok: str = "Yes"
    deny: str = "Cancel"


@dataclass(frozen=True)
class Button:
    """A button that runs `command` (command text for the core, e.g. "close #3") when pressed."""

    label: str
    command: str
    style: str | None = None  # "primary" | "danger" | None
    confirm: Confirm | None = None


@dataclass(frozen=True)
class Section:
    """A block of text, optionally with a heading and short label/value fields."""

    text: str = ""
    title: str | None = None
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Table:
    """A small table (renderers show it monospaced)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str | None = None


@dataclass(frozen=True)
class Actions:
    buttons: tuple[Button, ...]


@dataclass(frozen=True)
class Note:
    """Small print under a message (context line)."""

    text: str


Block = Section | Table | Actions | Note


@dataclass(frozen=True)
class Reply:
    """One message: `text` is the one-line summary (notifications, fallbacks), `blocks` the body."""

    text: str
    blocks: tuple[Block, ...] = ()
    ephemeral: bool = True  # only the person who asked sees it


class FieldKind(StrEnum):
    text = "text"
    long_text = "long_text"
    select = "select"
    multi_select = "multi_select"


@dataclass(frozen=True)
class ModalField:
    name: str
    label: str
    kind: FieldKind = FieldKind.text
    options: tuple[str, ...] = ()
    required: bool = True
    initial: str | tuple[str, ...] | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Modal:
    """A form; its submission comes back to the core as `(modal.kind, values, modal.context)`."""

    kind: str
    title: str
    fields: tuple[ModalField, ...]
    submit: str = "Submit"
    context: str = ""  # opaque to renderers, e.g. an incident number


class Target(StrEnum):
    """Where a post goes, relative to the incident it belongs to."""

    root = "root"        # the incident's summary card (posted once, then updated in place)
    thread = "thread"    # a reply in the incident's thread
    origin = "origin"    # the channel the command was typed in (e.g. the link to the thread)
    channel = "channel"  # a top-level message in `Post.channel` (alerts; a user ID for a DM)


@dataclass(frozen=True)
class Attachment:
    """A file a post asks for; its content is rendered at delivery time from the store (by the
    post's incident), so a delivery delayed by an outage still sends the current draft.

    Kinds: `postmortem_markdown` (the draft), `postmortem_charts` (a PNG per impacted route),
    `postmortem_canvas` (the draft as a canvas where the workspace allows it), `route_chart` (a
    route's charts over a range; `args`: route, range, as_of — no incident needed).
    """

    filename: str
    title: str
    kind: str
    args: tuple[tuple[str, str], ...] = ()  # what the kind renders from (JSON-safe strings)


@dataclass(frozen=True)
class Post:
    """A message to deliver durably (through the outbox); `key` makes delivery idempotent.

    With `replace`, the message earlier posted under the same key is updated in place (or, when
    it has not gone out yet, goes out with this content instead).
    """

    incident: int | None  # None only for Target.channel posts that belong to no incident
    target: Target
    reply: Reply
    key: str
    replace: bool = False
    attachments: tuple[Attachment, ...] = ()  # files to render and send with the post
    channel: str | None = None  # Target.channel: where to post
    thread_ts: str | None = None  # Target.channel: the thread in `channel` to post in


@dataclass
class Outcome:
    """Everything a command produced: the answer to the caller, posts, a modal to open."""

    reply: Reply | None = None
    posts: list[Post] = field(default_factory=list)
    modal: Modal | None = None
