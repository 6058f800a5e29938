"""Shared bounded types for everything that enters the service: one definition of "in range".

Integers are bounded by the columns they land in (32-bit INTEGER on PostgreSQL, so sums over a
billion rows still fit 64 bits), timestamps by what converts to UTC and back, numbers by being
finite, and text by what every backend stores and hands back intact (no NUL, no lone UTF-16
surrogate). Every request model and path or query parameter uses these, so an out-of-range value
is a 400 (or a per-event rejection) naming the field on every backend — never an overflow or an
encoding error in the database driver.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, ValidationInfo

INT_MAX = 2**31 - 1
MIN_TS = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TS = datetime(9999, 12, 30, tzinfo=timezone.utc)  # a day short of datetime.max: room for arithmetic
MAX_NUMBER = 1e15
NO_NUL = r"^[^\x00]*$"

Count = Annotated[int, Field(ge=0, le=INT_MAX)]
"""A whole number ≥ 0 that a column can hold (tokens, versions, error codes)."""

Positive = Annotated[int, Field(ge=1, le=INT_MAX)]
"""A whole number ≥ 1 that a column can hold (attempts, incident numbers)."""

Amount = Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]
"""A finite number ≥ 0 small enough that sums over any window stay finite (ms, USD)."""

Text = Annotated[str, Field(pattern=NO_NUL)]
"""Text without NUL characters (PostgreSQL text and JSONB cannot hold U+0000)."""


def _in_utc_range(value: datetime) -> datetime:
    if MIN_TS.year < value.year < MAX_TS.year:  # an offset (< 24 h) cannot take these out of range
        return value
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not MIN_TS <= utc <= MAX_TS:
        raise ValueError(f"timestamp must be between {MIN_TS:%Y-%m-%d} and {MAX_TS:%Y-%m-%d} "
                         "in UTC")
    return value


def _text_or_datetime(value: object) -> object:
    if isinstance(value, (int, float)):  # pydantic would read numbers as Unix time
        raise ValueError("timestamp must be an RFC 3339 string, e.g. 2026-11-26T14:00:00Z")
    return value


UtcTimestamp = Annotated[AwareDatetime, BeforeValidator(_text_or_datetime), AfterValidator(_in_utc_range)]
"""An RFC 3339 timestamp with an offset whose UTC time lies in [MIN_TS, MAX_TS]."""


def has_nul(value: object) -> bool:
    """True when a JSON-like value holds U+0000 in any key or string, at any depth."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (NUL, a lone UTF-16 surrogate), or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if "\x00" in text:
        return "text cannot contain NUL (U+0000) characters"
    return "text cannot contain lone UTF-16 surrogates (e.g. \\ud800)"


def json_problem(value: object, where: str = "") -> str | None:
    """The first thing in a JSON-like value no backend stores faithfully, with its path: NUL or a
    lone surrogate in a key or string, NaN or ±Infinity (SQLite's JSON functions call a stored NaN
    "malformed JSON"; PostgreSQL's JSONB refuses it). None when the value is clean."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{where}: {problem}" if problem and where else problem
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            return f"{where or 'value'}: NaN and Infinity are not JSON numbers"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            problem = text_problem(key) if isinstance(key, str) else None
            if problem:
                return f"{where + ': ' if where else ''}key {ascii(key)}: {problem}"
            problem = json_problem(item, path)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{where}[{index}]")
            if problem:
                return problem
    return None


SCANNED_BODY = "scanned_body"
"""Validation context key: the JSON body this value comes from was scanned whole and holds no
`\\u0000` escape, NaN, Infinity or number that overflows to infinity (`body_is_plain`), so no
value in it can hold what `json_problem` looks for (a raw NUL or a lone surrogate is invalid
JSON; the parser refuses it)."""
_SHAPE = bytes.maketrans(b"0123456789E+", b"0000000000e-")
"""Digits read as 0, E as e, + as -: a number's shape, so plain substring searches (fast) find
every exponent of 3+ digits and every long digit run."""
_RISKY_SHAPES = (b"NaN", b"Infinity", b"e000", b"e-000", b"0" * 200)
"""A JSON number overflows to infinity only with an exponent of 3+ digits or 210+ integer digits
(10^209 × 1e99 < 1.8e308); a 200-digit run catches the second."""


def body_is_plain(body: bytes) -> bool:
    """True when a JSON body cannot hold a value `json_problem` refuses (see SCANNED_BODY);
    False may be a false alarm (the word NaN in a string), never a miss."""
    if b"\\u0000" in body:
        return False
    shape = body.translate(_SHAPE)
    return not any(risky in shape for risky in _RISKY_SHAPES)


def _clean_json(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    if info.context is not None and info.context.get(SCANNED_BODY):
        return value
    problem = json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_clean_json)]
"""A JSON object (metadata) with no NUL, lone surrogate, NaN or Infinity anywhere inside."""
