"""Reply models → Block Kit JSON, and modal submissions → plain values. Pure functions.

Everything is cut to Slack's limits (50 blocks per message, 3,000 characters per text, …) with
"…" rather than failing: a message that is a bit shorter beats a message that never arrives.
"""

from __future__ import annotations

import re
from typing import Any

from llm_incident.commands.replies import (
    Actions,
    Button,
    FieldKind,
    Modal,
    ModalField,
    Note,
    Reply,
    Section,
    Table,
)

MAX_BLOCKS = 50           # per message (modals and the Home tab allow 100)
MAX_TEXT = 3000           # section / context text
MAX_FIELD = 2000          # one section field
MAX_FIELDS = 10           # fields per section
MAX_BUTTONS = 25          # elements per actions block
MAX_BUTTON_LABEL = 75
MAX_VALUE = 2000          # button value
MAX_OPTIONS = 100         # static select options
MAX_OPTION_LABEL = 75
MAX_OPTION_VALUE = 150
MAX_MODAL_TITLE = 24      # modal title, submit and close labels
MAX_METADATA = 3000       # private_metadata
MAX_TABLE_CELL = 80

RUN_ACTION = "llm_incident.run"         # action_id prefix of buttons that run a command
MODAL_CALLBACK = "llm_incident.modal"   # callback_id prefix of modals: "<prefix>.<kind>"
CHANNEL_BLOCK = "llm_incident_channel"  # channel picker for modals opened outside a channel
ELLIPSIS = "…"

# Slack entities kept as they are: <@U1>, <#C1|name>, <!here>, <!subteam^S1>, <https://…|label>
_ENTITY = re.compile(r"<(?:[@#!][\w^.-]+|(?:https?|mailto):[^<>\s|]+)(?:\|[^<>]*)?>")


# -- text ---------------------------------------------------------------------------------------

def escape(text: str) -> str:
    """Escape `& < >` for mrkdwn, keeping mentions, channel links and URLs intact."""
    out, pos = [], 0
    for match in _ENTITY.finditer(text):
        out.append(_escape_plain(text[pos:match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_escape_plain(text[pos:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Cut already-escaped text to `limit` characters with "…", never inside `<…>` or `&…;`."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    amp = cut.rfind("&")
    if amp > cut.rfind(";") and len(cut) - amp < 8:
        cut = cut[:amp]
    return cut + ELLIPSIS


def plain_text(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object (not escaped: Slack shows it verbatim)."""
    value = text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
    return {"type": "plain_text", "text": value or " ", "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _chunks(escaped: str, limit: int) -> list[str]:
    """Split escaped text into pieces of at most `limit`, at line breaks when possible."""
    pieces: list[str] = []
    current = ""
    for line in escaped.split("\n"):
        line = fit(line, limit)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
        else:
            pieces.append(current)
            current = line
    if current:
        pieces.append(current)
    return pieces


# -- message blocks -----------------------------------------------------------------------------

def section_blocks(section: Section) -> list[dict[str, Any]]:
    """Title in bold, text split over several sections past 3,000 chars, fields 10 per section."""
    raw = "\n".join(part for part in (f"*{section.title}*" if section.title else "", section.text)
                    if part)
    texts = _chunks(escape(raw), MAX_TEXT) if raw.strip() else []
    fields = [mrkdwn(fit(escape(f"*{label}*\n{value}"), MAX_FIELD))
              for label, value in section.fields]
    groups = [fields[i:i + MAX_FIELDS] for i in range(0, len(fields), MAX_FIELDS)]
    blocks = [{"type": "section", "text": mrkdwn(text)} for text in texts]
    for n, group in enumerate(groups):
        if n == 0 and blocks:
            blocks[-1]["fields"] = group
        else:
            blocks.append({"type": "section", "fields": group})
    return blocks


def table_lines(table: Table) -> list[str]:
    """The table as aligned, unescaped lines: header, rule, rows."""
    def cell(value: object) -> str:
        text = str(value).replace("\n", " ").replace("```", "'''")
        return text if len(text) <= MAX_TABLE_CELL else text[: MAX_TABLE_CELL - 1] + ELLIPSIS

    rows = [tuple(cell(c) for c in table.header)] + [tuple(cell(c) for c in r) for r in table.rows]
    width = len(table.header)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(width)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


def table_blocks(table: Table) -> list[dict[str, Any]]:
    """A monospaced table; split into several code blocks (header repeated) past 3,000 chars."""
    lines = [escape(line) for line in table_lines(table)]
    head, body = lines[:2], lines[2:] or [""]
    title = f"*{escape(table.title)}*\n" if table.title else ""
    blocks: list[dict[str, Any]] = []
    current: list[str] = []

    def flush() -> None:
        prefix = title if not blocks else ""
        text = prefix + "```\n" + "\n".join(head + current) + "\n```"
        blocks.append({"type": "section", "text": mrkdwn(text)})

    budget = MAX_TEXT - len(title) - len("```\n\n```") - sum(len(h) + 1 for h in head)
    used = 0
    for line in body:
        line = fit(line, max(budget - 1, 20))
        if current and used + len(line) + 1 > budget:
            flush()
            current, used = [], 0
        current.append(line)
        used += len(line) + 1
    flush()
    return blocks


def button_element(button: Button, index: int) -> dict[str, Any] | None:
    """A button whose value is the command to run; None when the command cannot fit."""
    if len(button.command) > MAX_VALUE:
        return None
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"{RUN_ACTION}.{index}",
        "text": plain_text(button.label, MAX_BUTTON_LABEL),
        "value": button.command,
    }
    if button.style in ("primary", "danger"):
        element["style"] = button.style
    if button.confirm is not None:
        c = button.confirm
        element["confirm"] = {
            "title": plain_text(c.title, 100),
            "text": plain_text(c.text, 300),
            "confirm": plain_text(c.ok, 30),
            "deny": plain_text(c.deny, 30),
        }
        if button.style == "danger":
            element["confirm"]["style"] = "danger"
    return element


def render_blocks(reply: Reply, *, max_blocks: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """The reply's body as blocks, at most `max_blocks` (the last one says what was left out)."""
    blocks: list[dict[str, Any]] = []
    index = 0
    for block in reply.blocks:
        if isinstance(block, Section):
            blocks.extend(section_blocks(block))
        elif isinstance(block, Table):
            blocks.extend(table_blocks(block))
        elif isinstance(block, Actions):
            elements = []
            for button in block.buttons:
                element = button_element(button, index)
                index += 1
                if element is not None:
                    elements.append(element)
            for i in range(0, len(elements), MAX_BUTTONS):
                blocks.append({"type": "actions", "elements": elements[i:i + MAX_BUTTONS]})
        elif isinstance(block, Note) and block.text.strip():
            text = fit(escape(block.text), MAX_TEXT)
            blocks.append({"type": "context", "elements": [mrkdwn(text)]})
    if not blocks:
        blocks = section_blocks(Section(text=reply.text if reply.text.strip() else "(empty)"))
    if len(blocks) > max_blocks:
        left = len(blocks) - (max_blocks - 1)
        blocks = blocks[: max_blocks - 1] + [{"type": "context", "elements": [
            mrkdwn(f"{ELLIPSIS} {left} more block(s) not shown: the message was too long")]}]
    return blocks


def message(reply: Reply) -> dict[str, Any]:
    """`text` (notifications, fallback) and `blocks` for chat.postMessage, chat.update, respond."""
    return {"text": fit(escape(reply.text), MAX_TEXT), "blocks": render_blocks(reply)}


# -- modals -------------------------------------------------------------------------------------

def _option(value: str) -> dict[str, Any]:
    return {"text": plain_text(value, MAX_OPTION_LABEL), "value": value}


def _element(field: ModalField) -> dict[str, Any]:
    options = [v for v in field.options if 0 < len(v) <= MAX_OPTION_VALUE][:MAX_OPTIONS]
    initial = field.initial
    if field.kind is FieldKind.select and options:
        element: dict[str, Any] = {"type": "static_select", "action_id": "value",
                                   "options": [_option(v) for v in options]}
        if isinstance(initial, str) and initial in options:
            element["initial_option"] = _option(initial)
        return element
    if field.kind is FieldKind.multi_select and options:
        element = {"type": "multi_static_select", "action_id": "value",
                   "options": [_option(v) for v in options]}
        chosen = [initial] if isinstance(initial, str) else list(initial or ())
        chosen = [v for v in chosen if v in options]
        if chosen:
            element["initial_options"] = [_option(v) for v in chosen]
        return element
    # text, long text, and selects without options (typed, comma separated)
    element = {"type": "plain_text_input", "action_id": "value", "max_length": MAX_TEXT,
               "multiline": field.kind is FieldKind.long_text}
    if initial:
        text = initial if isinstance(initial, str) else ", ".join(initial)
        element["initial_value"] = text[:MAX_TEXT]  # above max_length Slack refuses the view
    return element


def input_block(field: ModalField) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": field.name[:255],
        "label": plain_text(field.label, 2000),
        "optional": not field.required,
        "element": _element(field),
    }
    hint = field.hint
    if field.kind is FieldKind.multi_select and not field.options:
        hint = " ".join(p for p in (hint, "Several: separate with commas.") if p)
    if hint:
        block["hint"] = plain_text(hint, 2000)
    return block


def channel_picker() -> dict[str, Any]:
    """An input for the channel the incident thread goes to (for modals opened from App Home)."""
    return {
        "type": "input",
        "block_id": CHANNEL_BLOCK,
        "label": plain_text("Channel for the incident thread", 2000),
        "element": {
            "type": "conversations_select",
            "action_id": "value",
            "default_to_current_conversation": True,
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        },
        "hint": plain_text("The bot posts the summary card and runbook there.", 2000),
    }


def modal_view(modal: Modal, *, private_metadata: str | None = None,
               ask_channel: bool = False) -> dict[str, Any]:
    """The modal as a `views.open` view; `private_metadata` defaults to the modal's context."""
    metadata = modal.context if private_metadata is None else private_metadata
    if len(metadata) > MAX_METADATA:
        raise ValueError(f"private_metadata is {len(metadata)} characters; "
                         f"Slack allows {MAX_METADATA}")
    blocks = [input_block(field) for field in modal.fields]
    if ask_channel:
        blocks.insert(0, channel_picker())
    return {
        "type": "modal",
        "callback_id": f"{MODAL_CALLBACK}.{modal.kind}"[:255],
        "title": plain_text(modal.title, MAX_MODAL_TITLE),
        "submit": plain_text(modal.submit, MAX_MODAL_TITLE),
        "close": plain_text("Cancel", MAX_MODAL_TITLE),
        "private_metadata": metadata,
        "blocks": blocks[:100],
    }


def modal_kind(callback_id: str) -> str:
    """`llm_incident.modal.start` → `start`."""
    return callback_id.removeprefix(f"{MODAL_CALLBACK}.")


def _state_value(state: dict[str, Any]) -> str | list[str]:
    kind = state.get("type", "")
    if "selected_options" in state or kind.startswith("multi_") or kind == "checkboxes":
        options = state.get("selected_options")
        if options is not None:
            return [o.get("value", "") for o in options]
        for key in ("selected_conversations", "selected_channels", "selected_users"):
            if key in state:
                return list(state.get(key) or [])
        return []
    if "selected_option" in state:
        return (state.get("selected_option") or {}).get("value", "")
    for key in ("selected_conversation", "selected_channel", "selected_user", "selected_date"):
        if key in state:
            return state.get(key) or ""
    return state.get("value") or ""


def view_values(view: dict[str, Any]) -> dict[str, str | list[str]]:
    """`view.state.values` → {block_id: text or list of selected values}."""
    values: dict[str, str | list[str]] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for state in (actions or {}).values():
            values[block_id] = _state_value(state or {})
            break
    return values


def validation_errors(view: dict[str, Any]) -> dict[str, str]:
    """Errors per block_id for required inputs left blank (whitespace only counts as blank)."""
    values = view_values(view)
    errors: dict[str, str] = {}
    for block in view.get("blocks") or []:
        if block.get("type") != "input" or block.get("optional"):
            continue
        value = values.get(block.get("block_id", ""), "")
        empty = not value if isinstance(value, list) else not value.strip()
        if empty:
            label = ((block.get("label") or {}).get("text") or "This field").strip()
            errors[block["block_id"]] = f"{label} is required."
    return errors
