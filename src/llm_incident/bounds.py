"""Shared bounded types for everything that enters the service: one definition of "in range".

Integers are bounded by the columns they land in (32-bit INTEGER on PostgreSQL, so sums over a
billion rows still fit 64 bits), timestamps by what converts to UTC and back, numbers by being
finite, and text by what PostgreSQL can store (no NUL). Every request model and path or query
parameter uses these, so an out-of-range value is a 400 (or a per-event rejection) naming the
field on every backend — never an overflow in the database driver.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

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


def _no_nul(value: dict[str, Any]) -> dict[str, Any]:
    if has_nul(value):
        raise ValueError("text cannot contain NUL (U+0000) characters")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_no_nul)]
"""A JSON object (metadata) with no NUL anywhere inside."""
