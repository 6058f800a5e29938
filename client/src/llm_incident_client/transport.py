"""HTTP conventions shared by the SDK clients: headers, which answers to retry, and how long to wait."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from llm_incident_client._version import __version__

USER_AGENT = f"llm-incident-client/{__version__}"
RETRY_AFTER_CAP = 300.0
"""Longest `Retry-After` we honour, in seconds; a larger value is clamped to this."""


def base_url(url: object) -> str:
    """`url` without a trailing slash; ValueError unless it is an http(s) URL."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def auth_headers(api_key: object) -> dict[str, str]:
    """`Authorization: Bearer <key>` plus our user agent; ValueError on an empty key."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key must be a non-empty string")
    return {"Authorization": f"Bearer {api_key.strip()}", "User-Agent": USER_AGENT}


def is_retryable(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 429 and every 5xx."""
    return status in (408, 429) or 500 <= status <= 599


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d] where d = min(cap, base * 2**attempt)."""
    ceiling = min(cap, base * 2 ** min(attempt, 32))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0)
"""Pauses before the first reconnect attempts to a server that cannot be reached (then the caller's cap)."""


def reconnect_delay(attempt: int, *, cap: float, rng: random.Random | None = None) -> float:
    """Pause before reconnect number `attempt + 1` to a server that is down: 0.1, 0.2, 0.5, 1 s, then `cap`
    (each at most `cap`), with jitter down to half. Short, so a restarted server is seen within `cap`."""
    ceiling = min(cap, RECONNECT_DELAYS[attempt] if attempt < len(RECONNECT_DELAYS) else cap)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_delay(attempt: int, retry_after: float | None, *, base: float, cap: float) -> float:
    """How long to wait before retry number `attempt + 1`: our backoff, or longer if the server asked."""
    delay = backoff_delay(attempt, base=base, cap=cap)
    return max(delay, retry_after) if retry_after is not None else delay
