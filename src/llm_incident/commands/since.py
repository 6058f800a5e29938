"""`since <when>`: when an incident began, read from what a responder types (`start … since`,
`triage … since`, the start form's *Began at*)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from llm_incident.commands.parse import WINDOW_WORD, ParseError
from llm_incident.metrics.windows import WindowError, parse_span, parse_timestamp

CLOCK = re.compile(r"(\d{1,2}):(\d{2})")

MAX_SINCE = timedelta(days=7)


def since_time(text: str, now: datetime) -> datetime:
    """When an incident began, from `since` text: `19:37` (UTC, the latest such time not after
    `now`), `30m` / `2h` (ago), or an RFC 3339 timestamp; ParseError when unreadable, in the
    future, or more than 7 days back."""
    raw = text.strip()
    clock = CLOCK.fullmatch(raw)
    try:
        if clock:
            hour, minute = int(clock.group(1)), int(clock.group(2))
            if hour > 23 or minute > 59:
                raise ValueError
            moment = now.astimezone(timezone.utc).replace(hour=hour, minute=minute, second=0,
                                                          microsecond=0)
            if moment > now:
                moment -= timedelta(days=1)
        elif WINDOW_WORD.fullmatch(raw.lower()):
            moment = now - parse_span(raw)
        else:
            moment = parse_timestamp(raw)
    except (ValueError, WindowError):
        raise ParseError(f"`since {raw}` not understood: write 19:37 (UTC), 30m (ago) or "
                         "2026-12-02T19:37:00Z", "start") from None
    if moment > now:
        raise ParseError(f"`since {raw}` is in the future", "start")
    if now - moment > MAX_SINCE:
        raise ParseError(f"`since {raw}` is more than 7 days ago", "start")
    return moment
