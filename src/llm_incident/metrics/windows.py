"""Time windows for metrics: `"30m"` → timedelta, the window ending now, and its baseline window.

A window is half-open, `start <= ts < end`. Baselines:

- `previous` — the equal-length window just before (`[start - span, start)`);
- `day` / `week` — the same window 24 h / 7 days earlier;
- an explicit range `"<start>/<end>"` of RFC 3339 timestamps with a UTC offset
  (`2026-11-26T10:00:00Z/2026-11-26T11:00:00Z`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

MAX_WINDOW = timedelta(days=90)
BASELINE_KINDS = ("previous", "day", "week")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class WindowError(ValueError):
    """A window or baseline the caller wrote that cannot be used; the message says why."""


@dataclass(frozen=True)
class Window:
    """A half-open time range `[start, end)` in UTC."""

    start: datetime
    end: datetime

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def minutes(self) -> float:
        return self.span.total_seconds() / 60

    def shifted(self, delta: timedelta) -> Window:
        return Window(self.start - delta, self.end - delta)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Baseline:
    """The window a comparison measures against, and how it was chosen (`kind`)."""

    kind: str  # "previous" | "day" | "week" | "range"
    window: Window

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.window.to_dict()}


def parse_span(text: str) -> timedelta:
    """`"30m"`, `"1h"`, `"24h"`, `"7d"` (also `s`, `w`, decimals like `1.5h`) → timedelta."""
    cleaned = (text or "").strip().lower()
    match = _SPAN.fullmatch(cleaned)
    if not match:
        raise WindowError(
            f"window {text!r} not understood: write a number and a unit s, m, h, d or w, "
            "e.g. 30m, 1h, 24h, 7d"
        )
    try:
        span = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:  # e.g. 400 nines: longer than any window
        raise WindowError(f"window {text[:40]!r}… is too long: the maximum is "
                          f"{MAX_WINDOW.days}d") from None
    if span < timedelta(seconds=1):
        raise WindowError(f"window {text!r} is too short: the minimum is 1s")
    if span > MAX_WINDOW:
        raise WindowError(f"window {text!r} is too long: the maximum is {MAX_WINDOW.days}d")
    return span


def format_span(span: timedelta) -> str:
    """The shortest `parse_span` spelling of `span` (`timedelta(hours=24)` → `"1d"`)."""
    seconds = span.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def window_ending(now: datetime, span: timedelta) -> Window:
    """The window of length `span` that ends at `now`."""
    now = _utc(now, "now")
    return Window(now - span, now)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp with a UTC offset (`Z` allowed) → aware UTC datetime."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise WindowError(
            f"{text!r} is not a timestamp: use RFC 3339, e.g. 2026-11-26T14:00:00Z"
        ) from None
    if value.utcoffset() is None:
        raise WindowError(f"{text!r} needs a UTC offset, e.g. 2026-11-26T14:00:00Z")
    return value.astimezone(timezone.utc)


def parse_range(text: str) -> Window:
    """`"<start>/<end>"` → Window; start must be before end."""
    start_text, sep, end_text = text.partition("/")
    if not sep or not start_text.strip() or not end_text.strip():
        raise WindowError(
            f"time range {text!r} not understood: write <start>/<end>, "
            "e.g. 2026-11-26T10:00:00Z/2026-11-26T11:00:00Z"
        )
    start, end = parse_timestamp(start_text), parse_timestamp(end_text)
    if start >= end:
        raise WindowError(f"time range {text!r} is empty: the start must be before the end")
    if end - start > MAX_WINDOW:
        raise WindowError(f"time range {text!r} is too long: the maximum is {MAX_WINDOW.days}d")
    return Window(start, end)


def baseline_for(window: Window, spec: str | Window | Baseline = "previous") -> Baseline:
    """The baseline for `window`: a kind name, a `"<start>/<end>"` text, a Window or a Baseline."""
    if isinstance(spec, Baseline):
        return spec
    if isinstance(spec, Window):
        return Baseline("range", spec)
    kind = (spec or "previous").strip()
    if kind.lower() == "previous":
        return Baseline("previous", window.shifted(window.span))
    if kind.lower() == "day":
        return Baseline("day", window.shifted(timedelta(days=1)))
    if kind.lower() == "week":
        return Baseline("week", window.shifted(timedelta(days=7)))
    if "/" in kind:
        return Baseline("range", parse_range(kind))
    raise WindowError(
        f"baseline {spec!r} not understood: use previous, day, week or <start>/<end> "
        "(RFC 3339 timestamps)"
    )


def _utc(value: datetime, name: str) -> datetime:
    if value.utcoffset() is None:
        raise WindowError(f"{name} must be timezone-aware")
    return value.astimezone(timezone.utc)
