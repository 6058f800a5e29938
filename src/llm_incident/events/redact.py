"""Redaction and truncation of prompt/output excerpts before they are stored."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_KNOWN_KEY = re.compile(
    r"\b(?:(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}\b|gh[pousr]_[A-Za-z0-9]{30,}|AIza[0-9A-Za-z_-]{35}|lli_[A-Za-z0-9_-]{20,})"
)
_LONG_TOKEN = re.compile(r"\b[A-Za-z0-9_]{32,}\b")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_PHONE = re.compile(
    r"(?<![\w-])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
    r"\d{3,4}[ .-]?\d{3,4}(?![\w-]|[ .-]\d)"
)
_WORD_RUN = re.compile(r"[A-Za-z0-9_]{32}")  # every _LONG_TOKEN holds one
_DIGIT_RUN = re.compile(r"\d(?:[ ().+-]{0,2}\d){6}")  # cards and phones have 7+ digits
_KEY_MARKER = re.compile(r"sk-|pk-|rk-|xox|xapp-|AKIA|gh[pousr]_|AIza|lli_")


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    return "[card]" if _luhn_ok(re.sub(r"\D", "", match.group(0))) else match.group(0)


def _long_token(match: re.Match[str]) -> str:
    token = match.group(0)
    mixed = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
    return "[secret]" if mixed else token


def redact(text: str) -> str:
    """Replace emails, API-key-like strings, card numbers (Luhn-valid) and phone numbers."""
    # Cheap guards first: most excerpts contain none of these, and the regexes are the cost.
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if _KEY_MARKER.search(text):
        text = _KNOWN_KEY.sub("[secret]", text)
    if _WORD_RUN.search(text):
        text = _LONG_TOKEN.sub(_long_token, text)
    if _DIGIT_RUN.search(text):
        text = _CARD.sub(_card, text)
        text = _PHONE.sub("[phone]", text)
    return text


def excerpt(text: str | None, max_chars: int) -> str | None:
    """Redact, then cut to `max_chars` (an ellipsis marks the cut)."""
    if text is None:
        return None
    text = redact(text)
    if len(text) > max_chars:
        return text[: max(max_chars - 1, 0)] + "…" if max_chars else ""
    return text
