"""How to read a failed Slack Web API call: transient or for good, and how long Slack asks to wait.

Shared by the workers that talk to Slack after the fact (the outbox, the reply worker).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError

TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                    "request_timeout", "team_added_to_org"}


def status_and_error(exc: SlackApiError) -> tuple[int, str]:
    """The HTTP status and Slack's `error` string of a failed call ("" when none)."""
    data = exc.response.data
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    return getattr(exc.response, "status_code", 0), error


def transient(exc: SlackApiError) -> bool:
    """True when retrying may succeed: 429, 5xx, or one of Slack's transient errors."""
    status, error = status_and_error(exc)
    return status == 429 or status >= 500 or error in TRANSIENT_ERRORS


def retry_after(headers: Any) -> float:
    """Seconds from a Retry-After header (default 30, at most 15 minutes)."""
    value = None
    if headers:
        for name, raw in dict(headers).items():
            if str(name).lower() == "retry-after":
                value = raw[0] if isinstance(raw, (list, tuple)) else raw
    try:
        return min(max(float(value), 0.0), 900.0) if value is not None else 30.0
    except (TypeError, ValueError):
        return 30.0
