"""Redaction and truncation of prompt/output excerpts before they are stored."""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("[email]", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    # API-key-like: well-known prefixes, then long opaque tokens.
    (
        "[secret]",
        re.compile(
            r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|\bxox[abposr]-[A-Za-z0-9-]{10,}"
            r"|\bxapp-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}"
            r"|\bAIza[0-9A-Za-z_-]{35}|\blli_[A-Za-z0-9_-]{20,}"
            r"|\b(?=[A-Za-z0-9_]*\d)(?=[A-Za-z0-9_]*[A-Za-z])[A-Za-z0-9_]{32,}\b"
        ),
    ),
    ("[card]", re.compile(r"\b\d(?:[ -]?\d){12,18}\b")),
    ("[phone]", re.compile(r"(?<![\w+])\+?\d{1,3}?[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}\b")),
]


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if _luhn_ok(digits) else match.group(0)


def redact(text: str) -> str:
    """Replace emails, API-key-like strings, card numbers (Luhn-valid) and phone numbers."""
    for label, pattern in _PATTERNS:
        text = pattern.sub(_card if label == "[card]" else label, text)
    return text


def excerpt(text: str | None, max_chars: int) -> str | None:
    """Redact, then cut to `max_chars` (an ellipsis marks the cut)."""
    if text is None:
        return None
    text = redact(text)
    if len(text) > max_chars:
        return text[: max(max_chars - 1, 0)] + "…" if max_chars else ""
    return text
