"""The text of a slash command as the user typed it.

Slack escapes `&`, `<` and `>` in the text it sends (as `&amp;`, `&lt;`, `&gt;`: all text in Slack
uses the same escaping, so real mentions and links can be `<@U123>` / `<https://…>`). The command
core parses plain text (the console sends it as typed), so the adapter unescapes those three —
`&amp;` last, so a typed `&lt;` (sent as `&amp;lt;`) stays `&lt;` — and nothing else.
"""

from __future__ import annotations

from typing import Any


def unescape(text: str) -> str:
    """Slack's `&lt;`, `&gt;`, `&amp;` back to `<`, `>`, `&` (no other entity)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def command_text(body: dict[str, Any]) -> str:
    """The slash command payload's `text`, unescaped."""
    return unescape(body.get("text") or "")
