"""Reply models as terminal text: pure functions, numbered buttons."""

from __future__ import annotations

import re

from llm_incident.commands.replies import Actions, Button, Modal, Note, Reply, Section, Table

_MENTION = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]+))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^<>\s|]+)(?:\|([^<>]*))?>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def _label(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def plain(text: str) -> str:
    """`<@U1>` → `@U1`, `<#C1>` → `#C1`, `<url|label>` → `label (url)`, `<url>` → `url`."""

    def swap(m: re.Match[str]) -> str:
        sigil, ident, label = m.groups()
        if sigil in "@#":
            return f"{sigil}{label or ident}"
        return label or ident

    def link(m: re.Match[str]) -> str:
        url, label = m.groups()
        return f"{_label(label)} ({url})" if label else url

    return _MENTION.sub(swap, _LINK.sub(link, text))


def render_table(table: Table) -> list[str]:
    rows = [table.header, *table.rows]
    widths = [max(len(plain(str(r[i]))) for r in rows) for i in range(len(table.header))]
    lines = [f"{table.title}:"] if table.title else []
    for n, row in enumerate(rows):
        lines.append("  " + "  ".join(plain(str(c)).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def render_reply(reply: Reply, buttons: list[Button] | None = None) -> str:
    """The reply as text; buttons are numbered from len(buttons) + 1 and appended to `buttons`."""
    lines: list[str] = []
    for block in reply.blocks:
        if isinstance(block, Section):
            if block.title:
                lines.append(f"== {plain(block.title)} ==")
            if block.text:
                lines.extend(plain(block.text).splitlines())
            lines.extend(f"  {label}: {plain(value)}" for label, value in block.fields)
        elif isinstance(block, Table):
            lines.extend(render_table(block))
        elif isinstance(block, Actions):
            for button in block.buttons:
                if buttons is not None:
                    buttons.append(button)
                    lines.append(f"  [{len(buttons)}] {button.label}")
        elif isinstance(block, Note):
            lines.append(f"  ({plain(block.text)})")
    if not reply.blocks:
        lines.append(plain(reply.text))
    return "\n".join(lines)


def render_modal_intro(modal: Modal) -> str:
    return f"== {modal.title} == (empty answer keeps the default; Ctrl-C cancels)"
